"""Benchmark of the Hadamard rotation unit: resources and Fmax (median of nextpnr seeds 1-3)
on the iCE40 UP5K and the ECP5-25k for lengths 64..1024, and the hw/ designs.

    python scripts/bench_hadamard.py               # synthesis, rewrites BENCHMARKS.md's section
    python scripts/bench_hadamard.py --no-write    # print only

Every point streams one vector element per cycle (vectors back to back); the goal of
issue 17 is >= 80 MHz on the UP5K for lengths 64 to 1,024.
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design, parse_design
from lowbit.rtl_gen.generate import build_component
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section

COMMAND = "python scripts/bench_hadamard.py"
TARGETS = ("ice40-up5k", "ecp5-25k")
#: the length sweep (INT8 inputs, results shifted by about n/2)
SWEEP = ((64, 8, 3), (256, 8, 4), (1024, 8, 5))
GOAL_MHZ = {"ice40-up5k": 80.0}


def points():
    """(label, config): the sweep, then the hw/ designs not already in it."""
    out, seen = [], set()
    for length, width, shift in SWEEP:
        cfg = parse_design({"family": "hadamard", "name": f"hadamard_bench_n{length}",
                            "params": {"length": length, "width": width, "shift": shift}}, "<bench>")
        out.append(("sweep", cfg))
        seen.add((length, width, shift))
    for name, path in catalogue().items():
        cfg = load_design(path)
        if cfg.family == "hadamard" and (cfg.length, cfg.width, cfg.shift) not in seen:
            out.append((name, cfg))
    return out


def synth_rows(targets, jobs: int):
    from lowbit.fpga.metrics import synth_cells, synth_seeds

    rows, build = [], Path("build/bench_hadamard")
    for label, cfg in points():
        unit = build_component(cfg)
        unit._MustUse__silence = True            # only its attributes are read here
        for target in targets:
            start = time.perf_counter()
            result = synth_seeds(functools.partial(build_component, cfg), cfg.name, target,
                                 build / cfg.name / target, jobs=jobs)
            cells = synth_cells(result)
            goal = GOAL_MHZ.get(target)
            met = "—" if goal is None else ("yes" if result.fmax_median >= goal else
                                            f"no ({result.fmax_median / goal:.0%})")
            print(f"{cfg.name} {target}: {cells} ({time.perf_counter() - start:.0f} s)", flush=True)
            rows.append([cfg.name if label == "sweep" else label, cfg.length,
                         f"{cfg.width} -> {cfg.out_width}", cfg.shift, unit.latency,
                         cfg.metrics()["delay_line_bits"], target, *cells, met])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite BENCHMARKS.md")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--jobs", type=int, default=1, help="nextpnr seeds run in parallel")
    args = parser.parse_args()
    from lowbit.fpga.metrics import SYNTH_COLUMNS

    targets = args.target or list(TARGETS)
    start = time.perf_counter()
    rows = synth_rows(targets, args.jobs)
    body = [f"## Hadamard rotation unit (`{COMMAND}`)\n",
            "Streaming exact Walsh-Hadamard transform (`rtl_gen/hadamard.py`; bit for bit "
            "`golden_models/hadamard.py`), one vector element per cycle, vectors back to back; "
            "latency in cycles from an accepted element to its result; delay-line bits: the "
            "words the butterfly stages store (sum over stages of span x stage width). Fmax: "
            "median (min-max) of nextpnr seeds 1-3 in the pin shell. " + SYNTH_BASIS + "\n",
            markdown_table(["design", "length", "width in -> out", "shift", "latency",
                            "delay-line bits", "target", *SYNTH_COLUMNS, "UP5K goal 80 MHz"], rows),
            calibration_section(targets, jobs=args.jobs),
            f"\nThis section took {time.perf_counter() - start:.0f} s on 2 shared cores."]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        update_section("hadamard", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
