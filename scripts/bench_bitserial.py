"""Benchmark of the bit-serial MAC array: GEMV cycle counts measured under Verilator against
the ideal, and throughput per LUT and Fmax on iCE40 UP5K and ECP5-25k at several sizes and
precisions, beside bit-parallel multiplier arrays of the same throughput built by the same
generator (``mode: parallel``).

    python scripts/bench_bitserial.py              # cycles + synthesis, rewrites BENCHMARKS.md
    python scripts/bench_bitserial.py --no-synth   # cycle counts only (a minute)

Throughput of a design at a run-time precision: ``R * C * L / steps`` MAC per cycle
(``steps`` = wbits, or wbits * abits when activations are bit-serial too); "MAC/cycle per
1k area" divides it by the logic area of ``fpga.metrics`` (iCE40 logic cells, ECP5 LUT4 + 2 x
CCU2C + LUTRAM). Counts include the pin wrapper of ``fpga.wrapper``.
"""
from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path


from lowbit.golden_models.bitserial import plan, schedule
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.generate import build_component, generate
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section

COMMAND = "python scripts/bench_bitserial.py"
REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "bench_bitserial"
COMMON = dict(cols=1, group_size=128, k_max=4096, abits=8, asigned=True, scale_bits=8,
              zero_point=True)

# (name, params): the arrays whose cycles and resources are measured
SERIAL = [
    ("ws_r4_l16", dict(mode="weight_serial", rows=4, lanes=16, wbits_max=8)),       # bitserial_w8a8
    ("ws2_r4_l32", dict(mode="weight_serial", rows=4, lanes=32, wbits_max=2, group_size=256,
                        zero_point=False)),                                         # bitserial_w2a8
]
# bit-parallel baseline (symmetric 2-bit weights, as ws2_r4_l32): 4 rows x 8 lanes of 2-bit
# multipliers = the throughput of ws_r4_l16 at W2
PARALLEL = [
    ("par_r4_l8_w2", dict(mode="parallel", rows=4, lanes=8, wbits_max=2, zero_point=False)),
]
TARGETS = ["ice40-up5k", "ecp5-25k"]
CYCLE_DESIGNS = ["bitserial_w8a8", "bitserial_w2a8", "bitserial_both_w8a8", "bitserial_w2a8_gemm",
                 "parallel_w4a8"]
GEMV = dict(m=64, k=1024)


def config(name, params):
    return parse_design({"family": "bitserial", "name": name, "params": {**COMMON, **params}},
                        "<bench>")


def precisions(cfg):
    """Run-time points reported for a design: (wbits, abits)."""
    if cfg.mode == "parallel":
        return [(cfg.wbits_max, cfg.abits)]
    if cfg.mode == "both_serial":
        return [(1, 1), (2, 2), (2, 8), (4, 4), (4, 8), (8, 8)]
    return [(w, cfg.abits) for w in (1, 2, 3, 4, 8) if w <= cfg.wbits_max]


def label(cfg, wbits, abits):
    """A precision's name; 2-bit signed weights also carry ternary ones (same cycles)."""
    return f"W{wbits}A{abits}" + (" / ternary" if wbits == 2 and cfg.mode != "both_serial" else "")


def macs_per_cycle(cfg, wbits, abits):
    return cfg.rows * cfg.cols * cfg.lanes / len(schedule(cfg.mode, wbits, abits))


def cycle_rows():
    from lowbit.rtl_gen.catalogue import catalogue
    from lowbit.rtl_gen.families import load_design
    from lowbit.testbenches.runner import run

    rows = []
    for name in CYCLE_DESIGNS:  # the catalogue's designs: the test suite's Verilator builds
        cfg = load_design(catalogue()[name])
        generated = generate(cfg, BUILD / "rtl")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cycles.json"
            spec = Path(tmp) / "gemv.json"
            spec.write_text(json.dumps({**GEMV, "points": precisions(cfg), "out": str(out)}))
            run(generated.verilog.resolve(), generated.toplevel, "lowbit.testbenches.tb_bitserial_cycles",
                cache_root=(REPO / "build" / "sim_cache").resolve(), test_dir=Path(tmp) / "sim",
                env={"LOWBIT_CONFIG": str(generated.config.resolve()), "LOWBIT_GEMV": str(spec),
                     "LOWBIT_LATENCY": str(generated.latency)}, seed=1)
            results = json.loads(out.read_text())
        for r in results:
            steady = (r["cycles"] - r["latency"]) / r["ideal"]
            abits = r["abits"] if cfg.mode == "both_serial" else cfg.abits
            precision = f"W{r['wbits']}A{abits}"
            rows.append([name, cfg.mode, precision, f"{GEMV['m']}x{GEMV['k']}", r["ideal"],
                         r["latency"], r["cycles"], f"{100 * (steady - 1):+.2f} %",
                         f"{r['macs'] / r['cycles']:.1f}"])
            print(rows[-1], flush=True)
    return rows


def synth_rows(targets, jobs=2):
    from lowbit.fpga.flow import ToolError
    from lowbit.fpga.metrics import SYNTH_COLUMNS, synth_cells, synth_seeds

    resource_rows, throughput_rows = [], []
    for name, params in SERIAL + PARALLEL:
        cfg = config(name, params)
        p = plan(cfg)
        for target in targets:
            start = time.perf_counter()
            try:
                result = synth_seeds(functools.partial(build_component, cfg), name, target,
                                     BUILD / name / target, jobs=jobs)
            except ToolError as exc:
                reason = "does not fit" if "BEL" in str(exc) or "placement" in str(exc) \
                    or "expand region" in str(exc) else "failed"
                print(f"{name} {target}: {reason}: {exc}", flush=True)
                resource_rows.append([name, cfg.mode, f"{cfg.rows}x{cfg.cols}x{cfg.lanes}",
                                      target, reason, *[""] * (len(SYNTH_COLUMNS) + 1)])
                continue
            report, cells = result.report, synth_cells(result)
            print(f"{name} {target}: {cells} ({time.perf_counter() - start:.0f} s)", flush=True)
            resource_rows.append([name, cfg.mode, f"{cfg.rows}x{cfg.cols}x{cfg.lanes}", target,
                                  *cells, report.carry, p.rescalers])
            for wbits, abits in precisions(cfg):
                mpc = macs_per_cycle(cfg, wbits, abits)
                d = result.density(mpc)
                precision = label(cfg, wbits, abits)
                throughput_rows.append([precision, name, cfg.mode, target, f"{mpc:g}",
                                        f"{d['area']} {d['unit']}", f"{d['per_mac']:.1f}",
                                        f"{1000 / d['per_mac']:.1f}", d["dsp"], d["bram"],
                                        cells[-1], f"{mpc * result.fmax_median / 1000:.2f}"])
    throughput_rows.sort(key=lambda r: (r[0], r[3], r[1]))
    return resource_rows, throughput_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="nextpnr seeds run in parallel")
    args = parser.parse_args()
    body = [f"## Bit-serial MAC array\n\nRegenerate: `{COMMAND}`\n",
            "Design points: `ws` = weight-serial with weights of 1..8 bits at run time "
            "(`ws2`: 1..2 bits, symmetric: no zero point), int8 activations; `par` = the "
            "bit-parallel multiplier baseline from the same generator (built for one "
            "precision); `rRxlL` = R rows (PEs) x L lanes. A scale per group "
            f"({COMMON['group_size']} weights; 256 for `ws2`), a zero point where the "
            "weights are asymmetric (`ws`), signed int8 activations, k_max 4096. Ternary "
            "weights are 2-bit signed codes: their cycles and area are the W2A8 row's.\n",
            "### GEMV cycles (Verilator, full rate, every result checked)\n",
            "Designs of `hw/` (`lowbit list`); `bitserial_w8a8` is `ws_r4_l16` below, "
            "`bitserial_w2a8` is `ws2_r4_l32`.\n",
            f"A {GEMV['m']} x {GEMV['k']} GEMV as back-to-back row tiles. Ideal = tiles x "
            "ceil(K/L) x steps; steady-state overhead = (measured - latency) / ideal - 1.\n",
            markdown_table(["design", "mode", "precision", "GEMV", "ideal cycles", "latency",
                            "measured cycles", "steady-state overhead", "MAC/cycle"],
                           cycle_rows())]
    if not args.no_synth:
        from lowbit.fpga.metrics import SYNTH_COLUMNS

        targets = args.target or TARGETS
        resources, throughput = synth_rows(targets, args.jobs)
        body += ["\n### Resources and Fmax (Yosys + nextpnr, in the pin wrapper)\n",
                 "The run-time precision changes no hardware: one row per design and target. "
                 "`rescalers` = shared group-scale multipliers. *does not fit*: nextpnr "
                 "found no placement. *failed*: the tools exited (message printed by the "
                 "script). " + SYNTH_BASIS + "\n",
                 markdown_table(["design", "mode", "R x C x L", "target", *SYNTH_COLUMNS, "carry",
                                 "rescalers"], resources),
                 "\n### Throughput per logic area, bit-serial vs. bit-parallel\n",
                 "Area = iCE40 logic cells or ECP5 LUT-equivalents (`fpga.metrics.density`), DSP "
                 "and BRAM beside. A bit-serial row serves every precision up to its maximum at "
                 "run time; a parallel row is built for one. GMAC/s at the median Fmax.\n",
                 markdown_table(["precision", "design", "mode", "target", "MAC/cycle", "area",
                                 "area per MAC/cycle", "MAC/cycle per 1k area", "DSP", "BRAM",
                                 "Fmax MHz median (min-max)", "GMAC/s"], throughput),
                 calibration_section(targets, jobs=args.jobs)]
    update_section("bitserial", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
