"""The board core under Verilator: Verilog for the bench and one call to run it.

:func:`sim_parameters` fixes the simulated board (100 MHz clock, 12.5 Mbaud = 8 cycles per
bit, a 4,000-cycle watchdog, the host-link buffers of a board's top: the iCEBreaker's
unless another board is named) and returns what the bench needs to know
about it; :func:`write_sim_verilog` writes ``board_top.v`` (the :class:`BoardCore` of a
design point under those parameters) and :func:`run_board_sim` runs
``testbenches.tb_board`` on it through :func:`testbenches.runner.run` (cached builds).
"""
from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from lowbit.fpga.boards import BOARDS, BoardCore

SIM_CLOCK_HZ = 100e6
SIM_BAUD = 12_500_000
SIM_TIMEOUT_CYCLES = 4000



SIM_BOARD = BOARDS["icebreaker"]


def sim_core(config, board=SIM_BOARD) -> BoardCore:
    from lowbit.rtl_gen.generate import build_component

    return BoardCore(build_component(config), config.name, clk_hz=SIM_CLOCK_HZ, baud=SIM_BAUD,
                     buffer_bytes=board.buffer_bytes, out_buffer_bytes=board.out_buffer_bytes,
                     timeout_cycles=SIM_TIMEOUT_CYCLES)


def sim_parameters(core: BoardCore) -> dict:
    return {"divisor": core.divisor, "design_id": core.design_id,
            "buffer_bytes": core.buffer_bytes, "out_buffer_bytes": core.out_buffer_bytes,
            "timeout_cycles": core.timeout_cycles,
            "in_ports": [p.as_dict() | {"fields": p.fields} for p in core.in_ports],
            "out_ports": [p.as_dict() | {"fields": p.fields} for p in core.out_ports]}


def write_sim_verilog(config, out_dir: Path, board=SIM_BOARD) -> tuple[Path, dict]:
    """``board_top.v`` of ``config`` and the bench parameters (also in ``board.json``)."""
    from lowbit.rtl_gen.generate import write_atomic

    core = sim_core(config, board)
    text = verilog.convert(core, name="board_top", emit_src=False)
    params = sim_parameters(core)
    out = Path(out_dir)
    write_atomic(out / "board_top.v", text)
    write_atomic(out / "board.json", json.dumps(params, indent=1) + "\n")
    write_atomic(out / "config.yaml", config.to_yaml())
    return out / "board_top.v", params


def run_board_sim(config, build_root: Path, *, seed: int | None = None, count: int = 300,
                  testcase=None, check: bool = True, board: str = SIM_BOARD.name):
    """Run the board bench for ``config`` on the board core of ``board`` (its host-link
    buffers; clock and baud as above); returns :class:`testbenches.runner.SimResult`."""
    from lowbit.testbenches.runner import run

    out = Path(build_root).resolve() / config.name / f"board_sim{'' if board == SIM_BOARD.name else '-' + board}"
    verilog_path, params = write_sim_verilog(config, out, BOARDS[board])
    env = {"LOWBIT_CONFIG": str(out / "config.yaml"), "LOWBIT_BOARD": json.dumps(params),
           "LOWBIT_COUNT": str(count)}
    return run(verilog_path, "board_top", "lowbit.testbenches.tb_board",
               cache_root=Path(build_root).resolve() / "sim_cache", test_dir=out / "run",
               env=env, seed=seed, testcase=testcase, check=check)
