"""Board bitstreams and the simulated host link: measured figures for BENCHMARKS.md.

For each design (default: the activation catalogue's gelu_q3_4 and gelu_q4_11) and each
board (iCEBreaker, ULX3S-85F) this builds the board bitstream with the automatic clock
choice (``fpga.board_flow.build_board``, seed 1) and records the clock, timing and resources
of the whole top (UART + host bridge + block + LEDs), with Fmax the median of seeds 1-3
(``fpga.metrics``; seeds 2 and 3 built at seed 1's clock) and a calibration table; then it runs the board bench's
end-to-end test under Verilator and records the simulated host-link throughput (beats per
second of simulated time at the bench's 12.5 Mbaud, scaled to 115,200 baud).

    python scripts/bench_boards.py [design ...]
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path


from lowbit.fpga.board_flow import build_board
from lowbit.testbenches.board_sim import SIM_BAUD, run_board_sim
from lowbit.rtl_gen.families import load_design
from lowbit.fpga.boards import BOARDS as BOARD_SPECS
from lowbit.fpga.metrics import SEEDS, area, fmax_stats
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section

BOARDS = ["icebreaker", "ulx3s"]
DESIGNS = ["hw/gelu_q3_4.yaml", "hw/gelu_q4_11.yaml"]
COUNT = 400


def _sim_rate(config) -> tuple[int, float]:
    """Beats checked by the end-to-end test and beats per simulated second."""
    result = run_board_sim(config, Path("build"), seed=1, count=COUNT,
                           testcase="driver_end_to_end")
    log = Path(result.log).read_text()
    beats = int(re.search(r": (\d+) beats in", log).group(1))
    sim_ns = float(re.search(r"driver_end_to_end\s+PASS\s+([\d.]+)", log).group(1))
    return beats, beats / (sim_ns * 1e-9)


def main(designs: list[str]) -> None:
    rows, sim_rows = [], []
    for path in designs:
        config = load_design(path)
        for board in BOARDS:
            start = time.monotonic()
            folder = Path("build") / config.name / f"board-{board}"
            r = build_board(config, board, folder, seed=SEEDS[0])   # the bitstream, clock chosen
            # the other seeds at the clock seed 1 chose: Fmax is the median of the three
            fmax = [r["fmax_mhz"]] + [
                build_board(config, board, folder.with_name(f"{folder.name}-seed{s}"), seed=s,
                            freq_mhz=r["clock_mhz"])["fmax_mhz"] for s in SEEDS[1:]]
            median, low, high = fmax_stats(fmax)
            res = r["resources"]
            a = area({"target": r["target"], **res, "utilisation": r["utilisation"]})
            rows.append([config.name, r["board"], str(a), res["lut4"], res["ff"], res["dsp"],
                         res["bram"], f"{r['clock_mhz']:.2f}", f"{median:.1f} ({low:.1f}-{high:.1f})",
                         "yes" if r["timing_met"] else "**no**", len(r["attempts"]),
                         f"{time.monotonic() - start:.0f}"])
            print(rows[-1], flush=True)
        beats, rate = _sim_rate(config)
        sim_rows.append([config.name, beats, f"{rate:,.0f}",
                         f"{rate * 115200 / SIM_BAUD:,.0f}"])
    body = ["## Board bitstreams (`python scripts/bench_boards.py`)", "",
            "Whole board top: UART host link (SLIP + CRC-16 frames, 512-byte buffers), the "
            "block, status LEDs; clock chosen automatically (PLL, rebuilt below Fmax when "
            "the first try misses). " + SYNTH_BASIS + " The bitstream is seed 1's build "
            "(*met?* and *builds* are its own); seeds 2 and 3 are built at the clock it chose.", "",
            markdown_table(["design", "board", "logic area (iCE40 LC / ECP5 LUT-eq)", "LUT4", "FF",
                            "DSP", "BRAM", "clock MHz", "Fmax MHz median (min-max)", "met?",
                            "builds", "seconds"], rows), "",
            "Host link in simulation (the host driver through `cocotbext-uart`, RUN frames "
            "of whole vectors; throughput is bounded by the UART, so it scales with the "
            "baud rate):", "",
            markdown_table(["design", "beats checked", "beats/s at 12.5 Mbaud (sim)",
                            "beats/s at 115200 baud (scaled)"], sim_rows),
            calibration_section(sorted({BOARD_SPECS[b].target for b in BOARDS}))]
    update_section("boards", "\n".join(body))


if __name__ == "__main__":
    main(sys.argv[1:] or DESIGNS)
