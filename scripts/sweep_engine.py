"""The sweep engine: run every point of a sweep (generate -> sim -> synth per target) on local
worker processes or on a Dask distributed cluster, with a per-point result cache.

Why here: the engine calls the generators (``rtl_gen``), the test benches (``testbenches``)
and the FPGA flow (``fpga``), so by the import graph of docs/ARCHITECTURE.md it sits in
``scripts/`` (which may import everything); the CLI (``scripts/cli.py``) imports it lazily in
its ``sweep``/``report`` commands.

Contract
--------
:func:`run_sweep` expands nothing itself: it takes a :class:`~rtl_gen.sweep_spec.SweepSpec`.
Every point gets a cache key (:func:`point_key`): SHA-256 over the point's identity (design
document, steps, targets, seed, clock), the versions of the tools (:func:`tool_versions`) and a
digest of the source files that make the point (its generator, config class, test bench and,
with synthesis, the flow). ``<out>/points/<key>.json`` holds the finished record, written
atomically when the point ends, so an interrupted sweep resumes without redoing finished
points. A failed point is recorded (``status: failed``, ``step``, ``error``) and the sweep goes
on; ``retry_failed=True`` redoes failed points. :func:`run_point` is the unit of work: a
plain function of a plain dict, so it pickles to worker processes and Dask workers alike.

Back ends: ``scheduler=None`` -> a ``ProcessPoolExecutor`` of ``workers`` processes (default:
every local core); ``scheduler="local"`` -> a fresh Dask ``LocalCluster`` of ``workers``
processes; any other string -> the address of a running Dask scheduler (its workers need
lowbit installed and see their own ``build`` folder; records come back to this process).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import json
import multiprocessing
import os
import socket
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lowbit.rtl_gen.families import FAMILIES
from lowbit.rtl_gen.generate import write_atomic
from lowbit.rtl_gen.provenance import provenance, sources_digest, tool_versions
from lowbit.rtl_gen.sweep_spec import Point, SweepSpec

CLOCK_NS = 10.0  # every lowbit bench clocks its DUT at 10 ns
#: what decides a point's model accuracy besides the golden models (``evaluate:`` sweeps)
EVALUATION_MODULES = ["lowbit.scripts.sweep_accuracy", "lowbit.scripts.evaluate",
                      "lowbit.scripts.evaluate_model", "lowbit.scripts.evaluate_linear",
                      "lowbit.scripts.evaluate_units"]


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def code_digest(point: Point) -> str:
    """SHA-256 over the sources that decide this point's results (absent files count as absent)."""
    family = FAMILIES.get(point.family)
    # every generator helper and golden model counts, not only the family's own module
    modules = [family.generator.partition(":")[0], family.__module__] if family else [""]
    if "sim" in point.steps:
        modules.append(family.bench if family else "")
    if "synth" in point.steps:
        modules += ["lowbit.fpga.flow", "lowbit.fpga.wrapper", "lowbit.fpga.report",
                    "lowbit.fpga.metrics"]
    if point.evaluate is not None:   # the evaluation's code and its sentences
        modules += EVALUATION_MODULES
    h = hashlib.sha256(sources_digest().encode())
    for name in modules:
        path = _module_file(name) if name else None
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes() if path and path.is_file() else b"<absent>")
    if point.evaluate is not None:
        data = Path(__file__).resolve().parent / "eval_data"
        for path in sorted(data.glob("*.txt")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def point_key(point: Point, versions: dict) -> str:
    text = json.dumps({"point": point.identity(), "tools": versions, "code": code_digest(point)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _error_text(exc: BaseException) -> tuple[str, str]:
    """(one line: type and first message line, detail: message and where it was raised)."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    where = "".join(traceback.format_exception(exc, limit=-6)[1:-1])
    return f"{type(exc).__name__}: {lines[0] if lines else ''}", "\n".join(lines[:40]) + "\n" + where


def _sim_cycles(results_xml: Path) -> tuple[float, float]:
    """(simulated cycles, wall seconds) summed over the testcases of a cocotb results file."""
    cycles = seconds = 0.0
    scale = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        duration = float(props.get("sim_time_duration", 0.0))
        cycles += duration * scale.get(props.get("sim_time_unit", "ns"), 1.0) / CLOCK_NS
        seconds += float(case.get("time", 0.0))
    return cycles, seconds


def _do_sim(config, generated, task: dict, point_dir: Path) -> dict:
    from lowbit.rtl_gen.generate import test_module
    from lowbit.testbenches.runner import BUILD_MARKER, build, run

    cache = Path(task["sim_cache"])
    start = time.time()
    build_dir = build(generated.verilog.resolve(), generated.toplevel, cache_root=cache)
    marker = json.loads((build_dir / BUILD_MARKER).read_text())
    fresh = marker.get("built_at", 0) >= start
    env = {"LOWBIT_CONFIG": str(generated.config.resolve())}
    if generated.latency is not None:
        env["LOWBIT_LATENCY"] = str(generated.latency)
    t0 = time.perf_counter()
    result = run(generated.verilog.resolve(), generated.toplevel, test_module(config), cache_root=cache,
                 test_dir=(point_dir / "sim").resolve(), env=env, seed=task["seed"],
                 testcase=list(task["sim_tests"]) or None)
    wall = time.perf_counter() - t0
    cycles, test_seconds = _sim_cycles(result.results_xml)
    return {"tests": result.tests, "seed": result.seed, "seconds": round(wall, 3),
            "build_seconds": marker.get("seconds") if fresh else None, "build_cached": not fresh,
            "cycles": int(cycles),
            "cycles_per_s": round(cycles / test_seconds, 1) if test_seconds > 0 else None}


def _do_synth(config, target: str, task: dict, point_dir: Path) -> dict:
    """Synthesis figures of one point on one target, on :mod:`fpga.metrics`' basis.

    Resources (and ``timing_met``, ``step_seconds``) are seed 1's run; ``fmax_mhz`` is the
    median over the seeds (``fmax_seeds``, ``fmax_min``, ``fmax_max`` beside it); ``area`` /
    ``area_unit`` are iCE40 logic cells or ECP5 LUT-equivalents.
    """
    import functools

    from lowbit.fpga.metrics import SEEDS, seed_summary, synth_seeds
    from lowbit.rtl_gen.generate import build_component

    t0 = time.perf_counter()
    result = synth_seeds(functools.partial(build_component, config), config.name, target,
                         point_dir / target, SEEDS, freq_mhz=task["freq_mhz"])
    report = result.report
    out = {k: getattr(report, k) for k in ("lut4", "ff", "carry", "dsp", "bram", "spram", "lutram",
                                            "timing_met", "constraint_mhz")}
    summary = seed_summary(result)
    out.update({k: summary[k] for k in ("area", "area_unit", "logic_cells", "lut_equiv", "slices",
                                        "fmax_seeds", "fmax_min", "fmax_max", "area_seeds",
                                        "resources_from_seed")})
    out.update(fmax_mhz=summary["fmax_median"], seconds=round(time.perf_counter() - t0, 3),
               step_seconds={k: round(v, 3) for k, v in report.step_seconds.items()},
               notes=list(report.notes),
               tools={k: v for k, v in report.tool_versions.items()})
    return out


def run_point(task: dict) -> dict:
    """Generate, simulate and synthesise one point; never raises for a failing point."""
    from lowbit.rtl_gen.families import parse_design
    from lowbit.rtl_gen.generate import generate

    from lowbit.scripts.sweep_metrics import family_metrics

    rec = {"name": task["name"], "family": task["family"], "key": task["key"], "axes": task["axes"],
           "group": task["group"], "status": "ok", "step": None, "error": None, "detail": None,
           "worker": f"{socket.gethostname()}:{os.getpid()}", "generate": None, "sim": None,
           "synth": {}, "metrics": {}, "started": time.time()}

    def fail(step: str, exc: BaseException) -> None:
        rec["status"], rec["step"] = "failed", rec["step"] or step
        rec["error"], rec["detail"] = rec["error"] or _error_text(exc)[0], rec["detail"] or _error_text(exc)[1]

    if task["error"]:
        rec.update(status="failed", step="config", error=task["error"])
        return _finish(rec)
    root = Path(task["build_root"])
    try:
        config = parse_design(task["doc"], f"sweep point {task['name']}")
        t0 = time.perf_counter()
        generated = generate(config, root)
        rec["generate"] = {"seconds": round(time.perf_counter() - t0, 3), "latency": generated.latency,
                           "sha256": generated.sha256,
                           "verilog_lines": generated.verilog.read_text().count("\n")}
        rec["params"] = config.params()
        rec["provenance"] = provenance(config)
    except Exception as exc:  # noqa: BLE001 - a failing point is data, not a crash
        fail("generate", exc)
        return _finish(rec)
    point_dir = root / config.name
    try:
        rec["metrics"] = family_metrics(config)
    except Exception as exc:  # noqa: BLE001
        rec["metrics"] = {"error": _error_text(exc)[0]}
    if task.get("evaluate") is not None:
        from lowbit.scripts.sweep_accuracy import evaluate_point

        try:
            rec["accuracy"] = evaluate_point(config, task["evaluate"])
        except Exception as exc:  # noqa: BLE001 - recorded; sim and synthesis still run
            rec["accuracy"] = {"status": "failed", "error": _error_text(exc)[0]}
            fail("evaluate", exc)
    if "sim" in task["steps"]:
        try:
            rec["sim"] = _do_sim(config, generated, task, point_dir)
        except Exception as exc:  # noqa: BLE001
            fail("sim", exc)
            return _finish(rec)
    for target in task["targets"]:
        try:
            rec["synth"][target] = _do_synth(config, target, task, point_dir)
        except Exception as exc:  # noqa: BLE001
            rec["synth"][target] = {"error": _error_text(exc)[0]}
            fail(f"synth:{target}", exc)
    return _finish(rec)


def _finish(rec: dict) -> dict:
    rec["seconds"] = round(time.time() - rec.pop("started"), 3)
    return rec


@dataclass
class SweepRun:
    """What :func:`run_sweep` did: the records in spec order plus counts and wall time."""

    spec: SweepSpec
    out_dir: Path
    records: list[dict]
    ran: int = 0
    cached: int = 0
    seconds: float = 0.0
    backend: str = ""
    workers: int = 0
    interrupted: bool = False
    versions: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] != "ok"]


def _tasks(spec: SweepSpec, out: Path, versions: dict, sim_cache: Path) -> list[dict]:
    return [{"name": p.name, "family": p.family, "group": p.group, "axes": p.axes, "doc": p.doc,
             "steps": list(p.steps), "targets": list(p.targets), "seed": p.seed,
             "freq_mhz": p.freq_mhz, "sim_tests": list(p.sim_tests), "error": p.error,
             "evaluate": p.evaluate,
             "key": point_key(p, versions), "build_root": str((out / "build").resolve()),
             "sim_cache": str(sim_cache.resolve())} for p in spec.points]


def _local_backend(workers: int):
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(task):
        return pool.submit(run_point, task)

    def completed(futures):
        return concurrent.futures.as_completed(futures)

    def close(cancel: bool):
        pool.shutdown(wait=not cancel, cancel_futures=cancel)

    return submit, completed, close


def _dask_backend(scheduler: str, workers: int):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)

    def submit(task):
        return client.submit(run_point, task, key=f"lowbit-point-{task['key']}", pure=False)

    def completed(futures):
        return as_completed(futures)

    def close(cancel: bool):
        client.close()
        if cluster is not None:
            cluster.close()

    return submit, completed, close


def run_sweep(spec: SweepSpec, out_dir: Path, *, workers: int | None = None,
              scheduler: str | None = None, retry_failed: bool = False, use_cache: bool = True,
              sim_cache: Path | None = None, progress: Callable[[dict, dict], None] | None = None,
              on_start: Callable[[dict], None] | None = None) -> SweepRun:
    """Run ``spec``'s points not already cached in ``out_dir``; see the module docstring.

    ``progress(record, counts)`` is called in this process after every finished point with
    ``counts = {done, failed, remaining, cached}``; ``on_start(counts)`` once before any work
    (cached points already counted as done). Tables are written by the caller
    (:mod:`scripts.sweep_results`), also after an interruption (``SweepRun.interrupted``).
    """
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    sim_cache = sim_cache or Path("build") / "sim_cache"
    tasks = _tasks(spec, out, versions, sim_cache)
    records: dict[str, dict] = {}
    todo = []
    for task in tasks:
        path = out / "points" / f"{task['key']}.json"
        if use_cache and path.is_file():
            rec = json.loads(path.read_text())
            if rec["status"] == "ok" or not retry_failed:
                records[task["key"]] = {**rec, "cached": True}
                continue
        todo.append(task)
    workers = max(1, workers or os.cpu_count() or 1)
    backend = "local" if scheduler is None else ("dask-local" if scheduler == "local" else f"dask {scheduler}")
    run = SweepRun(spec, out, [], cached=len(records), backend=backend, workers=workers, versions=versions)
    counts = {"done": len(records), "failed": sum(r["status"] != "ok" for r in records.values()),
              "remaining": len(todo), "cached": len(records)}
    if on_start:
        on_start(dict(counts))
    start = time.perf_counter()
    if todo:
        submit, completed, close = (_local_backend(workers) if scheduler is None
                                    else _dask_backend(scheduler, workers))
        cancel = False
        try:
            futures = {submit(task): task for task in todo}
            for future in completed(list(futures)):
                task = futures[future]
                try:
                    rec = future.result()
                except Exception as exc:  # the worker itself died (OOM, killed, lost)
                    rec = {"name": task["name"], "family": task["family"], "key": task["key"],
                           "axes": task["axes"], "group": task["group"], "status": "failed",
                           "step": "worker", "error": _error_text(exc)[0],
                           "detail": traceback.format_exc(limit=5), "synth": {}, "metrics": {}}
                rec["cached"] = False
                write_atomic(out / "points" / f"{task['key']}.json",
                             json.dumps(rec, indent=1, sort_keys=True, default=str) + "\n")
                records[task["key"]] = rec
                run.ran += 1
                counts["done"] += 1
                counts["remaining"] -= 1
                counts["failed"] += rec["status"] != "ok"
                if progress:
                    progress(rec, dict(counts))
        except KeyboardInterrupt:
            cancel = run.interrupted = True
        finally:
            close(cancel)
    run.seconds = time.perf_counter() - start
    run.records = [records[t["key"]] for t in tasks if t["key"] in records]
    return run
