"""The sweep's speed-up from 1 to every local worker, measured side by side in one run.

``run_tools_bench`` runs ``sweeps/speedup.yaml`` three times from scratch (no result cache, a
fresh output folder each): on 1 local worker process, on ``workers`` (default: every core) local
worker processes, and on a local Dask cluster of as many processes; it writes the wall times,
the machine's core count and load, and the tool versions to a JSON file read by
:mod:`scripts.sweep_report`. The machine may be shared: the load average before the run is
recorded beside the times.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from lowbit.rtl_gen.generate import write_atomic
from lowbit.rtl_gen.sweep_spec import load_sweep

from lowbit.scripts.sweep_engine import run_sweep, tool_versions

SPEEDUP_SWEEP = Path(__file__).resolve().parent.parent / "sweeps" / "speedup.yaml"


def run_tools_bench(out_json: Path, *, workers: int | None = None, sweep: Path = SPEEDUP_SWEEP) -> dict:
    spec = load_sweep(sweep)
    cores = os.cpu_count() or 1
    workers = workers or cores
    load_before = os.getloadavg()[0]
    runs = []
    with tempfile.TemporaryDirectory(prefix="lowbit-speedup-") as tmp:
        for label, n, scheduler in (("local", 1, None), ("local", workers, None), ("dask-local", workers, "local")):
            run = run_sweep(spec, Path(tmp) / f"{label}-{n}", workers=n, scheduler=scheduler, use_cache=False)
            bad = [r["name"] for r in run.records if r["status"] != "ok"]
            if bad:
                raise RuntimeError(f"speed-up sweep failed on {label} x{n}: {', '.join(bad)}")
            runs.append({"backend": label, "workers": n, "seconds": round(run.seconds, 2)})
            print(f"speed-up sweep: {label} x{n}: {run.seconds:.1f} s", flush=True)
    doc = {"sweep": spec.name, "points": len(spec.points), "cores": cores, "load_before": load_before,
           "runs": runs, "versions": tool_versions()}
    write_atomic(Path(out_json), json.dumps(doc, indent=1) + "\n")
    return doc
