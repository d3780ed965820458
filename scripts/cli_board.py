"""The board parts of the ``lowbit`` command line: ``lowbit synth --board`` and ``lowbit run``.

Everything here refuses a design or an option in one line (``ConfigError``) before anything
is built; ``scripts/cli.py`` resolves the design and calls in.
"""
from __future__ import annotations

import time
from pathlib import Path

from lowbit.rtl_gen.config import ConfigError
from lowbit.scripts.cli_steps import progress, step


def check_board_clock(board_name: str, freq_mhz: float | None) -> None:
    """Refuse ``--freq`` on a board top without a PLL (one line, before anything is built)."""
    from lowbit.fpga.boards import BOARDS

    board = BOARDS[board_name]
    osc = board.clock_hz / 1e6
    if freq_mhz is not None and not board.has_pll and abs(freq_mhz - osc) > 1e-6:
        raise ConfigError("<command line>", "--freq",
                          f"{freq_mhz:g} MHz is not allowed on {board.name}: its board top has "
                          f"no PLL, the clock is the {osc:g} MHz oscillator only (leave --freq "
                          f"out or give --freq {osc:g})")


def board_synth(config, args) -> int:
    """``lowbit synth --board``: the board top's bitstream and its report."""
    from lowbit.fpga.board_flow import build_board, format_board_report

    out = Path(args.build_dir) / config.name / f"board-{args.board}"
    start = step(f"board bitstream of {config.name} for {args.board}")
    report = build_board(config, args.board, out, freq_mhz=args.freq, baud=args.baud,
                         seed=args.pnr_seed, progress=progress)
    print(f"  done in {time.perf_counter() - start:.1f} s\n")
    print(format_board_report(report))
    print(f"bitstream: {out / report['bitstream']}")
    return 0


def check_board_design(config, *, host: bool, board: str = "icebreaker", count: int = 256) -> None:
    """Refuse, before anything is built, a design the board top cannot carry (its streams)
    or, with ``host``, one whose family has no host adapter or whose vectors do not fit the
    board's host-link buffers."""
    from amaranth.hdl import Fragment

    from lowbit.fpga.boards import BOARDS, stream_ports
    from lowbit.fpga.host import check_fits
    from lowbit.rtl_gen.generate import build_component

    component = build_component(config)
    try:
        stream_ports(component)
        if host:
            check_fits(config, BOARDS[board], count=count)
    except ValueError as exc:
        raise ConfigError(config.source, "family", f"{config.name} cannot run on a board yet: {exc}") from None
    finally:
        Fragment.get(component, None)   # inspected only; elaborated so Amaranth does not warn


def run_design(config, args) -> int:
    """``lowbit run``: random vectors through the Verilator board (``--sim``) or a real
    board on ``--port``, checked against the golden model."""
    check_board_design(config, host=True, board=args.board, count=args.count)
    if args.sim:
        from lowbit.testbenches.board_sim import run_board_sim

        start = step(f"run {config.name} on the simulated board (Verilator)")
        result = run_board_sim(config, Path(args.build_dir), seed=args.seed, count=args.count,
                               testcase="driver_end_to_end", board=args.board)
        print(f"  {args.count} random vectors + corners through the host driver matched the "
              f"golden model (seed {result.seed}) in {time.perf_counter() - start:.1f} s")
        return 0
    if not args.port:
        raise ConfigError("<command line>", "--port", "give a serial port (e.g. /dev/ttyUSB1) "
                          "or --sim")
    import serial

    from lowbit.fpga.host import run_on_port

    step(f"run {config.name} on {args.port} at {args.baud} baud")
    try:
        result = run_on_port(config, args.port, baud=args.baud, count=args.count,
                             seed=args.seed or 1, timeout_s=args.timeout)
    except serial.SerialException as exc:
        raise ConfigError("<command line>", "--port", f"{args.port} cannot be opened "
                          f"({exc.strerror or exc}); give the board's serial port, e.g. "
                          "/dev/ttyUSB1, or --sim") from None
    print(result.summary())
    return 0 if result.ok else 1
