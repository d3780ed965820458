"""Issue 12's timing goals, every design of ``hw/`` measured in one run per target.

    python scripts/bench_goals.py --target ice40-up5k     # section goals-ice40-up5k
    python scripts/bench_goals.py --target ecp5-25k       # section goals-ecp5-25k
    python scripts/bench_goals.py --target ecp5-25k --design softmax_q5_2_u8   # print only
    python scripts/bench_goals.py --target ice40-up5k --resume --jobs 2   # go on after a stop
    python scripts/bench_goals.py --target ecp5-25k --design X --merge   # X again, same sources

Each design of the catalogue (``lowbit list``) is placed in the pin wrapper with nextpnr
seeds 1, 2 and 3 (``fpga.metrics.synth_seeds``; Yosys once, the three seeds place its
netlist), beside the calibration MAC of the same run, and set against the Fmax goal of its
class (``timing_goals.FMAX_GOALS``; the activation unit's class follows its method and input
width). Where a goal is missed, the row gives the clock-to-clock critical path of the
median seed's run. The section of the target is rewritten after every design (a stopped
run leaves the designs it finished, the rest listed as not yet run); with ``--design`` the
rows are printed and BENCHMARKS.md is left alone. The board top of ``bench_boards`` (UART
host link, bridge, block, LEDs) on the board of the target's FPGA family closes the table.
A nextpnr run over ``--pnr-timeout`` seconds is stopped and its seed named; the median is
then of the seeds that finished. The run's records (``build/bench_goals/<target>/
records.json``, with the generator sources' digest) let ``--resume`` go on with a stopped
run and ``--merge`` measure designs again into it, both only on the same sources, and the
section says when either was used. One process per target, so two targets use both cores
of a 2-core machine.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import build_component
from lowbit.rtl_gen.provenance import sources_digest
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section
from lowbit.scripts.timing_goals import CLASS_TEXT, FMAX_GOALS, clock_critical_path, goal_class

BUILD = Path("build/bench_goals")
TARGETS = ("ice40-up5k", "ecp5-25k")
COLUMNS = ["design", "family", "goal class", "logic area (iCE40 LC / ECP5 LUT-eq)", "LUT4",
           "FF", "DSP", "BRAM", "Fmax MHz median (min-max)", "goal MHz", "met",
           "critical path ns (median seed)", "from -> to", "through"]


def command(target: str) -> str:
    return f"python scripts/bench_goals.py --target {target}"


def failure_reason(exc: Exception) -> str:
    """``fpga.metrics.failure_reason`` of a flow error."""
    from lowbit.fpga.metrics import failure_reason as reason

    return reason(str(exc))


def path_cells(result) -> list[str]:
    """Critical path of the median-Fmax seed's run: delay text, start -> end, functions."""
    fmax = result.fmax
    at = fmax.index(statistics.median_low(fmax))
    return path_cells_from(Path(result.reports[at].report_json).parent / "nextpnr.log",
                           result.seeds[at])


def measure(cfg, target: str, jobs: int, pnr_timeout_s: float | None = None) -> dict:
    """One design on one target: a row of :data:`COLUMNS` and its class, median and verdict."""
    from lowbit.fpga.flow import ToolError
    from lowbit.fpga.metrics import synth_cells, synth_seeds

    cls = goal_class(cfg)
    goal = FMAX_GOALS[cls][target]
    head = [cfg.name, cfg.family, cls]
    try:
        result = synth_seeds(functools.partial(build_component, cfg), cfg.name, target,
                             BUILD / target / cfg.name, jobs=jobs, keep_going=True,
                             pnr_timeout_s=pnr_timeout_s)
    except ToolError as exc:
        reason = failure_reason(exc)
        print(f"{cfg.name} {target}: {reason}: {exc}", flush=True)
        return dict(cls=cls, median=None, met=False, reason=reason,
                    row=[*head, reason, "", "", "", "", "", goal, "no", "", "", ""])
    met = result.fmax_median >= goal
    row = [*head, *synth_cells(result), goal, "yes" if met else "**no**",
           *(["", "", ""] if met else path_cells(result))]
    return dict(cls=cls, median=result.fmax_median, met=met, reason=None, row=row)


def board_for(target: str) -> tuple[str, float]:
    """The board of ``scripts/bench_boards.py`` on ``target``'s FPGA family, and its clock."""
    from lowbit.fpga.boards import BOARDS
    from lowbit.fpga.targets import get_target
    from lowbit.scripts.bench_boards import BOARD_CLOCKS

    family = get_target(target).family
    return next((b, mhz) for b, mhz in BOARD_CLOCKS
                if mhz is not None and get_target(BOARDS[b].target).family == family)


def measure_board(target: str) -> dict:
    """The board top (UART host link, bridge, block, LEDs) of ``bench_boards``'s design on the
    board of ``target``'s family, at the board clock the goal names, seeds 1-3."""
    from lowbit.fpga.metrics import SEEDS
    from lowbit.scripts.bench_boards import BOARD_DESIGNS, board_row

    board, mhz = board_for(target)
    cfg = load_design(BOARD_DESIGNS[0])
    goal = FMAX_GOALS["board top"][target]
    row, fmax, logs = board_row(cfg, board, mhz)
    median = statistics.median(fmax)
    met = median >= goal
    path = ["", "", ""]
    if not met:
        at = fmax.index(statistics.median_low(fmax))
        path = path_cells_from(logs[at], SEEDS[at])
    # row: design, board, area, LUT4, FF, DSP, BRAM, clock, Fmax, met seeds
    return dict(cls="board top", median=median, met=met, reason=None,
                row=[f"board top: {cfg.name} on {row[1]} ({row[7]} MHz clock)", "board",
                     "board top", *row[2:7], row[8], goal, "yes" if met else "**no**", *path])


def path_cells_from(log: Path, seed: int) -> list[str]:
    try:
        path = clock_critical_path(log)
    except (OSError, ValueError, StopIteration, IndexError):
        return ["no report", "", ""]
    return [f"{path['total']:.2f} ({path['logic']:.2f} logic, {path['routing']:.2f} routing; "
            f"seed {seed})", f"`{path['start']}` -> `{path['end']}`",
            ", ".join(path["through"]) or "(pin wrapper / tools)"]


def summary(target: str, done: list[dict]) -> str:
    """Per goal class: designs met / measured, and the lowest and highest median."""
    rows = []
    for cls, text in {**CLASS_TEXT, "board top": f"board top with host link ({board_for(target)[0]})"}.items():
        mine = [d for d in done if d["cls"] == cls]
        if not mine:
            continue
        medians = [d["median"] for d in mine if d["median"] is not None]
        unplaced = [d for d in mine if d["median"] is None]
        spread = f"{min(medians):.1f}-{max(medians):.1f}" if medians else ""
        rows.append([text, FMAX_GOALS[cls][target], f"{sum(d['met'] for d in mine)} of {len(mine)}",
                     spread, ", ".join(f"{d['row'][0]} ({d['reason']})" for d in unplaced)])
    return markdown_table(["goal class", "goal MHz", "designs meeting it", "medians MHz (lowest-highest)",
                           "not placed"], rows)


def section(target: str, state: dict) -> str:
    """The target's section from the run's records (``state``: see :func:`main`)."""
    done, pending = state["records"], state["pending"]
    parts = [f"## Timing goals on {target}, every design in hw/ (`{command(target)}`)\n",
             f"Issue 12's Fmax goals (`scripts/timing_goals.py`) against every design of `hw/` in "
             f"one run on the {target}, generator sources `{state['sources'][:16]}` "
             "(`rtl_gen.provenance.sources_digest`). "
             + SYNTH_BASIS + " *Goal class*: the goal table's row the design falls under (the "
             "activation unit by method and input width; I-BERT, a polynomial, under poly). "
             "Where a goal is missed, the clock-to-clock critical path of the median seed's run "
             "(nextpnr.log; cells named after the registers they start and end at; the "
             "generator functions the path passes through). *does not fit*: nextpnr found no "
             "placement on the part; *nextpnr over N s*: a seed's placement and routing was "
             "stopped at the run's time limit (`--pnr-timeout`). The board top is "
             "`scripts/bench_boards.py`'s (UART host link, bridge, block, LEDs) at the goal's "
             "clock on the board of the target's FPGA family.\n",
             "### Against the goals\n",
             summary(target, done) if done else "(no design finished yet)",
             "\n### Every design\n",
             markdown_table(COLUMNS, [d["row"] for d in done])]
    if state.get("resumed"):
        parts.append(f"\nThe run was stopped and went on with `--resume` on the same sources "
                     f"({state['resumed']} time{'s' if state['resumed'] > 1 else ''}).")
    if state.get("remeasured"):
        parts.append(f"\nMeasured again after the run, on the same sources "
                     f"(`--design ... --merge`): {', '.join(state['remeasured'])}.")
    if pending:
        parts.append(f"\nNot yet run in this run (the run stopped or is going on): {', '.join(pending)}.")
    if state.get("calibration"):
        parts.append(state["calibration"])
    return "\n".join(parts)


def _save(records: Path, state: dict) -> None:
    """Write the run's records atomically (what ``--merge`` starts from)."""
    records.parent.mkdir(parents=True, exist_ok=True)
    partial = records.with_name(records.name + ".partial")
    partial.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(partial, records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--design", action="append", default=None,
                        help="only this design (repeatable); prints, BENCHMARKS.md is left alone")
    parser.add_argument("--merge", action="store_true",
                        help="with --design: measure these again and put them into the target's "
                             "table of the last whole run (same sources only)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the target's stopped whole run: measure the designs it "
                             "has not yet (same sources only)")
    parser.add_argument("--jobs", type=int, default=1, help="nextpnr seeds 2 and 3 in parallel")
    parser.add_argument("--pnr-timeout", type=float, default=900.0,
                        help="seconds per nextpnr run; a longer run is stopped and reported")
    parser.add_argument("--no-board", action="store_true", help="leave out the board top")
    args = parser.parse_args(argv)
    known = catalogue()
    names = args.design or sorted(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"bench_goals: --design {unknown[0]}: not a design of hw/ (lowbit list)", file=sys.stderr)
        return 2
    records = BUILD / args.target / "records.json"
    digest = sources_digest()
    state = {"sources": digest, "records": [], "pending": [], "remeasured": [], "calibration": ""}
    option = "--merge" if args.merge else "--resume" if args.resume else None
    why = ("choose one of --merge and --resume" if args.merge and args.resume
           else "needs --design" if args.merge and not args.design
           else "takes no --design (it runs what is pending)" if args.resume and args.design
           else None)
    if option and why is None:
        try:
            state = json.loads(records.read_text())
        except (OSError, ValueError):
            why = f"no records of a whole run in {records}"
        else:
            if state.get("sources") != digest:
                why = f"{records} is of other sources than the current ones: run the whole table"
    if why:
        print(f"bench_goals: {option}: {why}", file=sys.stderr)
        return 2
    if args.resume:
        names = [n for n in state["pending"] if n in known]
        state["resumed"] = state.get("resumed", 0) + 1
    configs = [load_design(known[n]) for n in names]
    write = args.design is None or bool(option)
    if not option:
        state["calibration"] = calibration_section([args.target], BUILD / "calibration",
                                                   jobs=args.jobs)
    jobs = [(cfg.name, functools.partial(measure, cfg, args.target, args.jobs, args.pnr_timeout))
            for cfg in configs]
    if (not args.design and not args.no_board and not args.resume) or (
            args.resume and "board top" in state["pending"]):
        jobs.append(("board top", functools.partial(measure_board, args.target)))
    if not option:
        state["pending"] = [n for n, _ in jobs]
    done = []
    for name, job in jobs:
        start = time.perf_counter()
        record = {"name": name, **job()}
        done.append(record)
        print(f"{name} {args.target}: {record['row'][3:11]} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if not write:
            continue
        kept = [r for r in state["records"] if r.get("name") != name]
        state["records"] = sorted([*kept, record], key=lambda r: (r["name"] == "board top", r["name"]))
        state["pending"] = [n for n in state["pending"] if n != name]
        if args.merge:
            state["remeasured"] = sorted({*state.get("remeasured", []), name})
        _save(records, state)
        update_section(f"goals-{args.target}", section(args.target, state))
    if not write:
        print(markdown_table(COLUMNS, [d["row"] for d in done]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
