"""Benchmark of the activation unit: accuracy (golden model, every input code), coefficient
storage, latency, and FPGA resources/Fmax of every activation design in hw/.

    python scripts/bench_activation.py              # accuracy + synthesis, rewrites BENCHMARKS.md
    python scripts/bench_activation.py --no-synth   # accuracy only (seconds)

Accuracy is against the correctly rounded float function (round half to even), in output
LSBs, over every input code; "abs err" is the worst absolute error against the exact float
function in real units.
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np


from lowbit.golden_models import activation as golden
from lowbit.rtl_gen.activation import pipeline_latency
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design, parse_design
from lowbit.rtl_gen.generate import build_component
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section

COMMAND = "python scripts/bench_activation.py"
ACCURACY_POINTS = [  # (function, method, format, order, segments)
    ("gelu", "poly", "Q3.4", 1, 16), ("gelu", "poly", "Q3.4", 2, 8), ("gelu", "table", "Q3.4", 0, 0),
    ("gelu", "ibert", "Q3.4", 0, 0),
    ("silu", "poly", "Q3.4", 1, 16), ("silu", "poly", "Q3.4", 2, 8), ("silu", "table", "Q3.4", 0, 0),
    ("gelu", "poly", "Q4.11", 1, 128), ("gelu", "poly", "Q4.11", 2, 16), ("gelu", "poly", "Q4.11", 2, 32),
    ("gelu", "ibert", "Q4.11", 0, 0),
    ("silu", "poly", "Q4.11", 2, 16), ("silu", "poly", "Q4.11", 2, 32),
]


def accuracy_rows():
    rows = []
    for function, method, fmt, order, segments in ACCURACY_POINTS:
        params = {"function": function, "method": method, "input": fmt}
        if method == "poly":
            params.update(order=order, segments=segments)
        config = parse_design({"family": "activation", "name": "point", "params": params}, "<bench>")
        codes = config.input.all_values()
        out = golden.model(config, codes)
        worst, mean = golden.error_lsb(out, golden.correctly_rounded(function, config.input, config.output, codes))
        exact = golden.reference_float(function, config.input.to_float(codes))
        abs_err = float(np.max(np.abs(out * config.output.lsb - exact)))
        shape = ""
        if method == "poly":
            table = golden.fit_poly(function, config.input, config.output, order, segments, config.guard_bits)
            shape = f"order {order}, {table.segments} seg x {'+'.join(map(str, table.widths))} b"
        latency = pipeline_latency(config)
        rows.append([function, method, f"{fmt} -> {fmt}", shape, golden.coefficient_bits(config),
                     worst, f"{mean:.4f}", f"{abs_err:.2e}", latency])
    return rows


def synth_rows(targets, jobs=2):
    from lowbit.fpga.metrics import synth_cells, synth_seeds

    rows = []
    build = Path("build/bench_activation")
    for name, path in catalogue().items():
        config = load_design(path)
        if config.family != "activation":
            continue
        for target in targets:
            start = time.perf_counter()
            result = synth_seeds(functools.partial(build_component, config), config.name, target,
                                 build / config.name / target, jobs=jobs)
            cells = synth_cells(result)
            print(f"{name} {target}: {cells} ({time.perf_counter() - start:.0f} s)", flush=True)
            rows.append([name, config.method, f"{config.input}", target, *cells])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="nextpnr seeds run in parallel")
    args = parser.parse_args()
    body = [f"## Activation unit (GELU / SiLU)\n\nRegenerate: `{COMMAND}`\n",
            "### Accuracy over every input code (golden model = RTL, bit for bit)\n",
            "Error in output LSBs against the correctly rounded float function; *abs err* against "
            "the exact float function. Coefficient bits: the poly engine's ROM, the table's "
            "contents, or I-BERT's four integer constants.\n",
            markdown_table(["function", "method", "format", "segments", "coef bits", "max err LSB",
                            "mean err LSB", "abs err", "latency (cycles)"], accuracy_rows())]
    if not args.no_synth:
        targets = args.target or ["ice40-up5k", "ecp5-25k"]
        from lowbit.fpga.metrics import SYNTH_COLUMNS

        body += ["\n### FPGA resources (Yosys + nextpnr, wrapped in the pin shell)\n",
                 "One result per clock at every row's Fmax. Counts include the PinWrapper shell "
                 "(a serial shift chain feeding the inputs and an XOR tree of the outputs), which "
                 "adds about one FF per port bit. " + SYNTH_BASIS + "\n",
                 markdown_table(["design", "method", "format", "target", *SYNTH_COLUMNS],
                                synth_rows(targets, args.jobs)),
                 calibration_section(targets, jobs=args.jobs)]
    body += ["\nFor scale (peers measured on the same flow, BENCHMARKS.md *Method*): I-BERT's i-GELU "
             "unit of an open transformer accelerator, int8: 221 LUT4 + 3 DSP (381 LC) at 135 MHz on "
             "iCE40 UP5K, 72 LUT4 + 71 CCU2C + 3 DSP at 55 MHz on ECP5-25k, 1.0 LSB; Edge-MoE's interpolated GELU-minus-ReLU table: "
             "177 x 22 bits = 3.9 kbit for about 1e-4 absolute error."]
    update_section("activation", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
