"""Board tops, the host link and the AXI4-Stream shell: measured figures for BENCHMARKS.md.

Three tables, each in its own section of BENCHMARKS.md (``boards``, ``boards-link``,
``boards-axis``), so one part can be rerun alone
(``python scripts/bench_boards.py [--part boards,link,axis]``):

* **Board tops** (UART host link + bridge + block + LEDs, :func:`fpga.board_flow.build_board`)
  for each board at a fixed requested clock (the issue-12 goal: 80 MHz on the iCEBreaker,
  150 MHz on the ULX3S; the Tang Nano 9K at its 27 MHz oscillator), seeds 1-3: Fmax is the
  median (min-max, :func:`fpga.metrics.fmax_stats`), resources of seed 1's build on the
  board's basis (:func:`fpga.metrics.area`).
* **Host link in simulation**, one design per family: the host driver through
  ``cocotbext-uart`` and the Verilator board core (``driver_end_to_end``), beats per second
  of simulated time at the bench's 12.5 Mbaud, scaled to 3 Mbaud and to the iCEBreaker's
  12 Mbaud (the link is bound by the UART: the bridge needs a few cycles per byte where the
  UART needs 80 at 12.5 Mbaud, so the scaling is conservative).
* **AXI4-Stream shell overhead**, one design per family: the block alone and inside
  :func:`fpga.axis_shell.axis_shell`, both in the flow's pin shell
  (:func:`fpga.metrics.synth_seeds`, seeds 1-3) on the UP5K and the ECP5-25k
  (``--axis-targets``); every family on the first target before the next, the section
  rewritten after each point, so a stopped run keeps what it measured and says so.

Every figure comes from this run's builds; a calibration table closes each synthesis
section.
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

from lowbit.fpga.axis_shell import axis_shell
from lowbit.fpga.board_flow import build_board
from lowbit.fpga.boards import BOARDS
from lowbit.fpga.metrics import SEEDS, SYNTH_COLUMNS, area, fmax_stats, synth_cells, synth_seeds
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import build_component
from lowbit.scripts.benchmarks_md import (SYNTH_BASIS, calibration_section, markdown_table,
                                          update_section)
from lowbit.testbenches.board_sim import SIM_BAUD, run_board_sim

#: (board, requested clock MHz or None for the oscillator)
BOARD_CLOCKS = [("icebreaker", 80.0), ("ulx3s", 150.0), ("tangnano9k", None)]
#: the board tops' design: a block that is not the limit (gelu_q3_4 alone: 110 MHz on the
#: UP5K), so the figures are the host link's and the bridge's
BOARD_DESIGNS = ["hw/gelu_q3_4.yaml"]
#: one design per family (the host-link and AXI4-Stream tables)
FAMILY_DESIGNS = ["hw/gelu_q4_11.yaml", "hw/softmax_q5_2_u8.yaml", "hw/lutgemv_g4_n8.yaml",
                  "hw/gemv_mult_w4.yaml", "hw/bitserial_w2a8.yaml", "hw/hadamard_n64.yaml"]
LINK_COUNT = 64
AXIS_TARGETS = ["ice40-up5k", "ecp5-25k"]


def board_row(config, board: str, mhz: float | None) -> tuple[list, list[float], list[Path]]:
    """One board top of ``config`` at ``mhz`` (None: the oscillator), seeds 1-3: its table
    row, each seed's Fmax and each seed's nextpnr timing log (``top.tim``)."""
    dirs = [Path("build") / config.name / f"bench-board-{board}-seed{s}" for s in SEEDS]
    reports = [build_board(config, board, d, freq_mhz=mhz, seed=s) for d, s in zip(dirs, SEEDS)]
    r = reports[0]
    median, low, high = fmax_stats([x["fmax_mhz"] for x in reports])
    res = r["resources"]
    a = area({"target": r["target"], **res, "utilisation": r["utilisation"]})
    met = sum(x["timing_met"] for x in reports)
    return [config.name, BOARDS[board].name, str(a), res["lut4"], res["ff"], res["dsp"],
            res["bram"], f"{r['clock_mhz']:.2f}", f"{median:.1f} ({low:.1f}-{high:.1f})",
            f"{met} of {len(reports)}"], [x["fmax_mhz"] for x in reports], \
        [d / x["folder"] / "top.tim" for d, x in zip(dirs, reports)]


def board_rows(designs) -> list[list]:
    rows = []
    for path in designs:
        config = load_design(path)
        for board, mhz in BOARD_CLOCKS:
            rows.append(board_row(config, board, mhz)[0])
            print(rows[-1], flush=True)
    return rows


def link_rows(designs) -> list[list]:
    rows = []
    for path in designs:
        config = load_design(path)
        result = run_board_sim(config, Path("build"), seed=1, count=LINK_COUNT,
                               testcase="driver_end_to_end")
        log = Path(result.log).read_text()
        m = re.search(r": (\d+) beats in, (\d+) results, 0 mismatches, \d+ retries, (\d+) runs",
                      log)
        beats_in, beats_out, runs = (int(g) for g in m.groups())
        sim_s = float(re.search(r"driver_end_to_end\s+PASS\s+([\d.]+)", log).group(1)) * 1e-9
        scale = [b / SIM_BAUD for b in (3_000_000, BOARDS["icebreaker"].max_baud)]
        rows.append([config.family, config.name, beats_in, beats_out, runs,
                     *(f"{beats_in / sim_s * k:,.0f} / {beats_out / sim_s * k:,.0f}"
                       for k in scale)])
        print(rows[-1], flush=True)
    return rows


def _bare(path):
    return build_component(load_design(path))


def _shelled(path):
    return axis_shell(build_component(load_design(path)))


AXIS_TEXT = ("AXI4-Stream shell (`lowbit package --interface axis`: the streams wired "
             "through, `aresetn` through two reset-less flip-flops and a registered reset, "
             "TREADY/TVALID gated at each port while the block is in reset) against the bare "
             "block, both in the flow's pin shell (its `rst` pin registered the same way); "
             "overhead = shell - block (area, Fmax median). ")


def axis_points(designs, targets) -> list[tuple[str, str]]:
    """(design, target) in the order they are built: every family on one target first."""
    return [(path, target) for target in targets for path in designs]


def axis_rows(path: str, target: str) -> list[list]:
    """Block, shell and overhead rows of one design on one target (seeds 1-3 each)."""
    config = load_design(path)
    out = Path("build") / config.name / "bench-axis" / target
    bare = synth_seeds(functools.partial(_bare, path), config.name, target, out / "bare")
    shell = synth_seeds(functools.partial(_shelled, path), f"{config.name}_axis",
                        target, out / "axis")
    rows = [[config.family, config.name, target, label, *synth_cells(result)]
            for label, result in (("block", bare), ("AXI4-Stream shell", shell))]
    rows.append([config.family, config.name, target, "**overhead**",
                 f"{shell.area.value - bare.area.value:+d}", "", "", "", "",
                 f"{shell.fmax_median - bare.fmax_median:+.1f}"])
    print(rows, flush=True)
    return rows


def write_axis(designs, targets, section: str = "boards-axis", points=None,
               command: str = "python scripts/bench_boards.py --part axis") -> None:
    """The ``boards-axis`` section (or ``section``: a run on other targets beside it),
    rewritten after every point (a stopped run keeps the points it finished, and says how
    many of how many those are); calibration first."""
    points = points or axis_points(designs, targets)
    targets = sorted({t for _, t in points})
    calibration = calibration_section(targets)
    rows: list[list] = []
    for done in range(len(points) + 1):
        if done:
            rows += axis_rows(*points[done - 1])
        state = ("" if done == len(points) else
                 f" **Partial run: {done} of {len(points)} points** (design x target) "
                 f"finished; the rest were not built.")
        update_section(section, "\n".join([
            f"### AXI4-Stream shells (`{command}`)", "",
            AXIS_TEXT + SYNTH_BASIS + state, "",
            markdown_table(["family", "design", "target", "build", *SYNTH_COLUMNS], rows),
            "", calibration]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="boards,link,axis",
                        help="comma-separated: boards, link, axis (default: all); each part "
                             "rewrites only its own section of BENCHMARKS.md")
    parser.add_argument("--axis-targets", default=",".join(AXIS_TARGETS),
                        help=f"targets of the AXI4-Stream table (default {','.join(AXIS_TARGETS)})")
    parser.add_argument("--axis-designs", default=",".join(FAMILY_DESIGNS),
                        help="designs of the AXI4-Stream table (default: one per family)")
    parser.add_argument("--axis-points", default="",
                        help="design@target,... built in this order (instead of every design "
                             "on every --axis-targets target)")
    parser.add_argument("--axis-section", default="boards-axis",
                        help="BENCHMARKS.md section of the AXI4-Stream table (default "
                             "boards-axis; another name keeps a run on other targets beside it)")
    args = parser.parse_args(argv)
    parts = set(args.part.split(","))
    if "boards" in parts:
        update_section("boards", "\n".join([
            "## Board tops, host link, AXI4-Stream shells (`python scripts/bench_boards.py`)",
            "", "### Board tops (`python scripts/bench_boards.py --part boards`)", "",
            "Whole board top: UART host link (SLIP + CRC-16 frames; one section per "
            "stream in each RUN frame, every stream fed and collected at once), the block, "
            "status LEDs, at the requested clock (PLL; the Tang Nano 9K at its 27 MHz "
            "oscillator). " + SYNTH_BASIS + " *met* counts the seeds whose build met the "
            "clock.", "",
            markdown_table(["design", "board", "logic area (iCE40 LC / LUT-eq)", "LUT4",
                            "FF", "DSP", "BRAM", "clock MHz", "Fmax MHz median (min-max)",
                            "met"], board_rows(BOARD_DESIGNS)), "",
            calibration_section(sorted({BOARDS[b].target for b, _ in BOARD_CLOCKS}))]))
    if "link" in parts:
        update_section("boards-link", "\n".join([
            "### Host link in simulation (`python scripts/bench_boards.py --part link`)", "",
            "One design per family (the host driver through "
            "`cocotbext-uart` and the Verilator board core, whole vectors per RUN frame as "
            "many as the iCEBreaker's 4 kB / 2 kB buffers take; input beats / output beats "
            "per second; scaled from the bench's 12.5 Mbaud, the link being bound by the "
            "UART):", "",
            markdown_table(["family", "design", "beats in", "beats out", "runs",
                            "beats/s in / out at 3 Mbaud",
                            "beats/s in / out at 12 Mbaud (iCEBreaker FT2232H)"],
                           link_rows(FAMILY_DESIGNS))]))
    if "axis" in parts:
        points = [tuple(p.split("@")) for p in args.axis_points.split(",") if p]
        command = " ".join(["python scripts/bench_boards.py",
                            *(sys.argv[1:] if argv is None else argv)])
        write_axis(args.axis_designs.split(","), args.axis_targets.split(","),
                   args.axis_section, points, command)


if __name__ == "__main__":
    main()
