"""Benchmark of the softmax unit: accuracy of the golden model (= the RTL, bit for bit) on
random and wide-spread rows, row sums, per-row KL divergence, throughput figures, and FPGA
resources/Fmax of every softmax design in hw/.

    python scripts/bench_softmax.py              # accuracy + synthesis, rewrites BENCHMARKS.md
    python scripts/bench_softmax.py --no-synth   # accuracy only (a few minutes: the worst-case
                                                 # search); keeps the synthesis part as it is

Errors are against the float softmax of the *quantised* inputs, in output LSBs (a length-1
row's 1.0 saturates to the largest UQ0.x code: 1 LSB). Row-sum error: sum of the output codes
minus 1.0, in LSBs. KL: KL(float softmax || outputs renormalised), nats per row; the same
figure for the correctly rounded float softmax is given beside it (quantisation alone).
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np


from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import build_component
from lowbit.rtl_gen.softmax import timing
from lowbit.scripts.benchmarks_md import (SYNTH_BASIS, calibration_section, markdown_table, read_section,
                                        update_section)
from lowbit.scripts.softmax_search import row_text, search

COMMAND = "python scripts/bench_softmax.py"
ROWS_PER_SET = 2000
SEED = 2024
SYNTH_HEADING = "### FPGA resources"  # --no-synth keeps the section from this heading on


def row_sets(cfg, rng):
    """Named sets of rows: uniform over the format, wide spread, narrow, all of length n_max."""
    fmt, n_max = cfg.input, cfg.n_max

    def length():
        return int(rng.integers(1, n_max + 1))

    def uniform(n):
        return rng.integers(fmt.min_int, fmt.max_int + 1, n)

    def wide(n):  # a few large scores over a low floor: one or two probabilities dominate
        x = rng.integers(fmt.min_int, fmt.min_int + (4 << fmt.frac_bits), n)
        x[rng.integers(0, n, 3)] = rng.integers(0, fmt.max_int + 1, 3)
        return x

    def narrow(n):  # scores within +-2: many comparable probabilities
        centre = int(rng.integers(fmt.min_int, fmt.max_int + 1))
        return np.clip(centre + rng.integers(-(2 << fmt.frac_bits), (2 << fmt.frac_bits) + 1, n),
                       fmt.min_int, fmt.max_int)

    return {"random length, uniform": [uniform(length()) for _ in range(ROWS_PER_SET)],
            "random length, wide spread": [wide(length()) for _ in range(ROWS_PER_SET)],
            "random length, narrow": [narrow(length()) for _ in range(ROWS_PER_SET)],
            f"n = {n_max}, uniform": [uniform(n_max) for _ in range(ROWS_PER_SET)]}


def accuracy_rows(configs, searched: dict | None = None):
    searched = {} if searched is None else searched
    rows = []
    for cfg in configs:
        c = golden.constants_of(cfg)
        rng = np.random.default_rng(SEED)
        for name, xs in row_sets(cfg, rng).items():
            metrics = [golden.row_metrics(cfg, x, golden.row_model(c, x)) for x in xs]
            rounded = [golden.row_metrics(cfg, x, golden.correctly_rounded(cfg.input, cfg.output, x))["kl"]
                       for x in xs]
            sums = np.array([m["sum_err"] for m in metrics])
            slack = np.array([abs(m["sum_err"]) - (len(x) / 2 + 1) for m, x in zip(metrics, xs)])
            rows.append([cfg.name, f"{cfg.input} -> {cfg.output}", name,
                         f"{max(m['max_err'] for m in metrics):.3f}",
                         f"{max(m['max_err_unsaturated'] for m in metrics):.3f}",
                         f"{np.mean([m['mean_err'] for m in metrics]):.4f}",
                         f"{sums.min()} .. {sums.max()}", "yes" if (slack <= 0).all() else "NO",
                         f"{np.mean([m['kl'] for m in metrics]):.2e} / {max(m['kl'] for m in metrics):.2e}",
                         f"{np.mean(rounded):.2e}"])
        rows.append(searched_row(cfg, searched))
    return rows


def searched_row(cfg, searched: dict) -> list:
    """The accuracy table's "searched worst case" row of one design (scripts/softmax_search.py):
    its worst row by the p < 1 error, that row's other figures; *max err* is the searched worst
    counting saturated 1.0s. ``searched[cfg.name]`` keeps the result for the notes below the table."""
    result = searched[cfg.name] = search(cfg, log=print)
    top, full = result.top("max_err_unsaturated"), result.top("max_err")
    m, x = top.metrics, top.x
    rounded = golden.row_metrics(cfg, x, golden.correctly_rounded(cfg.input, cfg.output, x))["kl"]
    return [cfg.name, f"{cfg.input} -> {cfg.output}", f"**searched worst case** ({_short(top)})",
            f"{full.error('max_err'):.3f}", f"**{top.error():.3f}**", f"{m['mean_err']:.4f}", f"{m['sum_err']}",
            "yes" if abs(m["sum_err"]) <= len(x) / 2 + 1 else "NO", f"{m['kl']:.2e}", f"{rounded:.2e}"]


def _short(found) -> str:
    refined = "; hill-climbed from it" if found.family.startswith("refined") else ""
    return found.detail.split(" -> ")[0] + refined


def searched_notes(configs, searched: dict) -> str:
    lines = ["\n*Searched worst case* (`python scripts/softmax_search.py hw/<design>.yaml`): the worst "
             "row of a search over structured rows (one dominant element over a flat floor, k equal "
             "maxima over a floor, flat rows; every gap, every length; in online mode the dominant "
             "first / middle / last at levels covering a base-2 unit of the running max), then a "
             "seeded hill-climb from the worst rows found; its figures are the golden model's on that "
             "one row. A bound found by search, not a proof.\n"]
    for cfg in configs:
        result = searched[cfg.name]
        top = result.top("max_err_unsaturated")
        lines.append(f"- {cfg.name}: **{top.error():.3f} LSB** at p = {top.p['max_err_unsaturated']:.4f}, "
                     f"{top.family}, {top.detail.split(' -> ')[0]}; x = {row_text(cfg, top.x, 6)} "
                     f"({result.candidates} rows, {result.seconds:.0f} s; {'; '.join(result.notes)})")
    return "\n".join(lines) + "\n"


def design_rows(configs):
    rows = []
    for cfg in configs:
        c, t = golden.constants_of(cfg), timing(cfg)
        buffers = [f"{t['x_depth']} x {cfg.input.width + 1}"] if t["x_depth"] else []
        buffers.append(f"{t['e_depth']} x {t['e_bits']}")
        rows.append([cfg.name, cfg.max_mode, cfg.n_max, "yes" if cfg.mask else "no",
                     f"order {c.order}, {c.segments} seg", c.qb, t["dividers"], t["row_overhead"],
                     f"{t['passes']}n + {t['first_output_latency']}", " + ".join(buffers)])
    return rows


def synth_rows(configs, targets, jobs=2):
    from lowbit.fpga.metrics import synth_cells, synth_seeds

    rows = []
    build = Path("build/bench_softmax")
    for cfg in configs:
        for target in targets:
            start = time.perf_counter()
            result = synth_seeds(functools.partial(build_component, cfg), cfg.name, target,
                                 build / cfg.name / target, jobs=jobs)
            cells = synth_cells(result)
            print(f"{cfg.name} {target}: {cells} ({time.perf_counter() - start:.0f} s)", flush=True)
            rows.append([cfg.name, target, *cells, "; ".join(result.report.notes) or ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="nextpnr seeds run in parallel")
    args = parser.parse_args()
    configs = [cfg for cfg in map(load_design, catalogue().values()) if cfg.family == "softmax"]
    searched = {}
    body = [f"## Softmax unit\n\nRegenerate: `{COMMAND}`\n",
            f"### Accuracy ({ROWS_PER_SET} rows per set, seed {SEED}; golden model = RTL, bit for bit)\n",
            "Errors in output LSBs against the float softmax of the quantised inputs; a length-1 "
            "row's 1.0 saturates to the largest UQ0.x code (1 LSB); *max err, p < 1* leaves such "
            "saturated elements out. Row sum: sum of the codes minus "
            "1.0, in LSBs; *within* says whether every row is inside +-(n/2 + 1) LSB. KL: per-row "
            "KL(float || outputs renormalised, zeros as half an LSB), mean / max; the last column is "
            "the mean KL of the correctly rounded float softmax (what quantisation alone costs).\n",
            markdown_table(["design", "formats", "rows", "max err LSB", "max err, p < 1", "mean err LSB", "row sum LSB",
                            "within", "KL mean / max", "KL rounded"], accuracy_rows(configs, searched)),
            searched_notes(configs, searched),
            "\n### Design figures\n",
            "Throughput: one beat per cycle in and out, sustained over consecutive rows of n >= "
            "*row overhead* beats (the bench checks that a full-rate run is never refused); a "
            "shorter row occupies *row overhead* cycles (one reciprocal per row, 2 QB + 3 cycles in "
            "one of *dividers* units taking rows in turn). "
            "Latency of a lone row: first output 2n + L cycles after its first input with the "
            "row buffer (max pass, then exp pass), n + L with the online max (one pass; row buffer: "
            "e and its max tag only).\n",
            markdown_table(["design", "max mode", "n_max", "mask", "exp2 fraction", "QB", "dividers", "row overhead",
                            "first output", "row buffers (words x bits)"], design_rows(configs))]
    if not args.no_synth:
        from lowbit.fpga.metrics import SYNTH_COLUMNS

        targets = args.target or ["ice40-up5k", "ecp5-25k"]
        body += ["\n" + SYNTH_HEADING + " (Yosys + nextpnr, wrapped in the pin shell)\n",
                 "Counts include the PinWrapper shell (a serial shift chain feeding the inputs and an "
                 "XOR tree of the outputs). " + SYNTH_BASIS + " For scale: Softermax (1 lane, rows "
                 "of 16) needs 10 DSPs and does not fit the UP5K; on ECP5-25k it takes 2,333 LUT4 + "
                 "10 MULT18 at 69 MHz (BENCHMARKS.md *Method*, peers).\n",
                 markdown_table(["design", "target", *SYNTH_COLUMNS, "notes"],
                                synth_rows(configs, targets, args.jobs)),
                 calibration_section(targets, jobs=args.jobs)]
    else:  # keep the synthesis part already in BENCHMARKS.md (accuracy and design figures only)
        kept = (read_section("softmax") or "").partition(SYNTH_HEADING)
        if kept[1]:
            body.append("\n" + kept[1] + kept[2].rstrip())
    update_section("softmax", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
