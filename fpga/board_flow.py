"""Build a board bitstream for a design point: clock choice, Amaranth platform build, report.

Contract
--------
:func:`build_board` puts the design's block in a :class:`~fpga.boards.BoardTop` for one of
:data:`~fpga.boards.BOARDS` and runs the ``amaranth-boards`` platform build (Yosys,
nextpnr with the board's pin constraints and a clock constraint on the ``sync`` domain,
icepack/ecppack; on the Tang Nano 9K the platform's files with nextpnr-himbaechel and
``gowin_pack``) with the ``yowasp-*`` tools (``YOSYS``, ``NEXTPNR_*``, ``ICEPACK``/
``ECPPACK``/``GOWIN_PACK`` as in :mod:`fpga.flow`).

Clock: ``freq_mhz`` given -> that clock (through the PLL unless it equals the oscillator),
timing met or not. ``freq_mhz=None`` -> start at the board's default (48 MHz iCE40,
100 MHz ECP5, the Tang Nano 9K's 27 MHz oscillator, which has no PLL here); while nextpnr's Fmax misses it (at most two more times), rebuild at the
fastest PLL clock at or below 95 % of that Fmax (or the bare oscillator if that is slower),
and report the result of the last build, met or not. Every attempt is listed in the report.

Outputs in ``out_dir``: ``top.bin``/``top.bit``/``top.fs`` (the bitstream), ``report.json`` and
``report.md`` (clock, PLL settings, Fmax, timing met?, resources, baud, how to program),
``attempt-N/`` (the platform build folders with logs). Bitstream and reports appear under
their final names only after a fully successful run (``report.json`` last).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .boards import BOARDS, BoardCore, BoardTop
from .flow import ToolError, resolve_tool
from .report import count_resources, parse_nextpnr_report

__all__ = ["build_board", "BOARD_BAUD"]

BOARD_BAUD = 115200


SUFFIX = {"ice40": ".bin", "ecp5": ".bit", "gowin": ".fs"}


def _tool_env(family: str) -> dict[str, str]:
    names = {"ice40": ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"],
             "ecp5": ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"],
             "gowin": ["YOSYS", "NEXTPNR_HIMBAECHEL", "GOWIN_PACK"]}[family]
    return {name: resolve_tool(name) for name in names}


def _gowin_build(plan, board, clk_hz: float, out: Path, seed: int) -> None:
    """Amaranth's Gowin template calls the legacy ``nextpnr-gowin``; PyPI has nextpnr's
    himbaechel Gowin back end, so the plan's files (RTLIL, Yosys script, ``.cst`` pins) are
    written and the three steps run here, as :mod:`fpga.flow` runs them."""
    import subprocess

    from .targets import get_target

    tgt = get_target(board.target)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in plan.files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    family = tgt.pack_args[1]
    steps = [("yosys", [resolve_tool("YOSYS"), "-q", "-l", "top.rpt", "top.ys"]),
             ("nextpnr", [resolve_tool("NEXTPNR_HIMBAECHEL"), *tgt.nextpnr_args,
                          "--vopt", "cst=top.cst", "--json", "top.syn.json",
                          "--write", "top.pnr.json", "--report", "report.json",
                          "--freq", f"{clk_hz / 1e6:g}", "--timing-allow-fail",
                          "--seed", str(seed), "--log", "top.tim"]),
             ("gowin_pack", [resolve_tool("GOWIN_PACK"), "-d", family, "-o", "top.fs",
                             "--sspi_as_gpio", "--mspi_as_gpio", "top.pnr.json"])]
    for step, argv in steps:
        proc = subprocess.run(argv, cwd=out, capture_output=True, text=True)
        (out / f"{step}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
            raise ToolError(f"{step} failed for {board.name}: {tail[0]} (logs in {out})")


def _attempt(config, board, clk_target_hz: float | None, baud: int, out: Path, seed: int):
    from lowbit.rtl_gen.generate import build_component

    pll = None
    clk_hz = board.clock_hz
    if clk_target_hz is not None and abs(clk_target_hz - board.clock_hz) > 1:
        pll = board.pll(clk_target_hz)
        clk_hz = pll.f_out_hz
    core = BoardCore(build_component(config), config.name, clk_hz=clk_hz, baud=baud,
                     buffer_bytes=board.buffer_bytes, out_buffer_bytes=board.out_buffer_bytes)
    top = BoardTop(core, board, pll)
    platform = board.make_platform()
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    saved = {k: os.environ.get(k) for k in _tool_env(board.family)}
    os.environ.update(_tool_env(board.family))
    try:
        # do_build=False returns the plan without the upfront check for the board's
        # programming tool (openFPGALoader on the ULX3S), which building does not need
        # iCE40: let Yosys map multipliers to the SB_MAC16 DSPs, as fpga.flow does
        extra = {"synth_opts": "-dsp"} if board.family == "ice40" else {}
        plan = platform.build(top, name="top", do_build=False, **extra,
                              script_after_synth="tee -q -o stat.json stat -json",
                              nextpnr_opts=f"--report report.json --timing-allow-fail "
                                           f"--seed {seed}")
        if board.family == "gowin":
            _gowin_build(plan, board, clk_hz, out, seed)
        else:
            plan.execute_local(str(out))
    except ToolError:
        raise
    except Exception as exc:   # amaranth raises subprocess errors with the script's status
        raise ToolError(f"board build for {board.name} failed: {exc} (logs in {out})") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    fmax, constraint, met, utilisation = parse_nextpnr_report(out / "report.json")
    cells = json.loads((out / "stat.json").read_text())["design"]["num_cells_by_type"]
    return {
        "clock_mhz": clk_hz / 1e6, "pll": None if pll is None else pll.params,
        "fmax_mhz": fmax, "timing_met": met, "seconds": round(time.monotonic() - start, 1),
        "resources": count_resources(board.family, {c: int(n) for c, n in cells.items()
                                                   if not c.startswith("$scopeinfo")}),
        "utilisation": {k: v for k, v in utilisation.items() if v.get("used")},
        "uart_divisor": core.divisor, "design_id": core.design_id,
        "buffer_bytes": core.buffer_bytes, "out_buffer_bytes": core.out_buffer_bytes,
        "folder": out.name,
    }


def build_board(config, board_name: str, out_dir: Path, *, freq_mhz: float | None = None,
                baud: int = BOARD_BAUD, seed: int = 1,
                progress: Callable[[str], None] | None = None) -> dict:
    """Build ``config`` for board ``board_name``; returns the report dict (module docstring)."""
    if board_name not in BOARDS:
        raise ValueError(f"unknown board {board_name!r}; allowed: {', '.join(sorted(BOARDS))}")
    board = BOARDS[board_name]
    say = progress or (lambda _m: None)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    suffix = SUFFIX[board.family]
    finals = [out / f"top{suffix}", out / "report.md", out / "report.json"]
    for stale in finals:
        stale.unlink(missing_ok=True)

    target = (freq_mhz if freq_mhz is not None else board.default_freq_mhz) * 1e6
    attempts = []
    for n in range(3):
        say(f"attempt {n + 1}: clock {target / 1e6:g} MHz requested")
        result = _attempt(config, board, target, baud, out / f"attempt-{n + 1}", seed)
        attempts.append(result)
        say(f"clock {result['clock_mhz']:.2f} MHz, Fmax {result['fmax_mhz']:.1f} MHz, "
            f"timing {'met' if result['timing_met'] else 'NOT met'}")
        if result["timing_met"] or freq_mhz is not None:
            break
        if board.family == "gowin":     # no PLL: nothing slower to try
            break
        target = max(0.95 * result["fmax_mhz"] * 1e6, board.clock_hz)
        if target <= board.clock_hz * 1.1:
            target = board.clock_hz
    final = attempts[-1]
    report = {
        "design": config.name, "family": config.family, "board": board.name,
        "target": board.target, "baud": baud, **final,
        "bitstream": f"top{suffix}",
        "program": board.program.format(bitstream=f"top{suffix}"),
        "attempts": [{k: a[k] for k in ("clock_mhz", "fmax_mhz", "timing_met", "seconds",
                                          "folder")} for a in attempts],
    }
    partial = finals[0].with_name(finals[0].name + ".partial")
    shutil.copyfile(out / final["folder"] / f"top{suffix}", partial)
    finals[1].with_name("report.md.partial").write_text(format_board_report(report))
    finals[2].with_name("report.json.partial").write_text(json.dumps(report, indent=2) + "\n")
    for path in finals:
        os.replace(path.with_name(path.name + ".partial"), path)
    return report


def format_board_report(r: dict) -> str:
    res = r["resources"]
    lines = [f"# {r['design']} on {r['board']}", "",
             f"Clock {r['clock_mhz']:.3f} MHz"
             + (f" from the PLL ({', '.join(f'{k}={v}' for k, v in r['pll'].items())})"
                if r["pll"] else " (board oscillator, no PLL)")
             + f"; nextpnr Fmax {r['fmax_mhz']:.1f} MHz: timing "
             + ("**met**." if r["timing_met"] else "**NOT met**."), "",
             f"Host link: UART {r['baud']} baud 8N1 (divisor {r['uart_divisor']}), "
             f"{r['buffer_bytes']}-byte input and {r.get('out_buffer_bytes', r['buffer_bytes'])}-byte "
             f"output buffers, design id {r['design_id']:#010x}.", "",
             "| LUT4 | FF | carry | DSP | BRAM |", "|---:|---:|---:|---:|---:|",
             f"| {res['lut4']} | {res['ff']} | {res['carry']} | {res['dsp']} | {res['bram']} |",
             "", "## Attempts", "", "| clock MHz | Fmax MHz | met? | seconds | folder |",
             "|---:|---:|:-:|---:|---|"]
    lines += [f"| {a['clock_mhz']:.3f} | {a['fmax_mhz']:.1f} | "
              f"{'yes' if a['timing_met'] else 'no'} | {a['seconds']} | {a['folder']} |"
              for a in r["attempts"]]
    lines += ["", f"Program: `{r['program']}`",
              f"Run vectors: `lowbit run --port /dev/ttyUSB1 {r['design']}` "
              f"(the iCEBreaker's FTDI UART is usually the second port)."]
    return "\n".join(lines) + "\n"
