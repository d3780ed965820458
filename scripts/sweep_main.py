"""What ``lowbit sweep`` and ``lowbit report`` do, behind the thin CLI in ``scripts/cli.py``.

    lowbit sweep sweeps/x.yaml [--workers N] [--scheduler ADDRESS|local] [--out DIR] [--retry-failed]
    lowbit report [RESULTS.json ...] [--tools-bench]

``sweep`` expands the file, runs the points (cached ones are skipped), shows a progress bar
(done / failed / remaining) and writes ``build/sweeps/<name>/results.{json,csv}`` and
``summary.md``, also when interrupted (Ctrl-C): the next run resumes. Exit status 0 when every
point passed, 1 when any failed, 130 when the sweep was interrupted.
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.sweep_spec import DEFAULT_MAX_POINTS, load_sweep

from lowbit.scripts.cli_errors import Interrupted
from lowbit.scripts.sweep_engine import run_sweep
from lowbit.scripts.sweep_results import write_results

SWEEPS_ROOT = Path("build") / "sweeps"


def check_sim_tests(spec) -> None:
    """Every ``sim_tests`` name must be a test of its point's bench: one line, before any
    point is built (a typo would otherwise fail every point with "no test ran")."""
    from lowbit.rtl_gen.families import FAMILIES
    from lowbit.testbenches.runner import bench_tests

    known: dict[str, list[str]] = {}
    for point in spec.points:
        if not point.sim_tests or point.error or point.family not in FAMILIES:
            continue
        bench = FAMILIES[point.family].bench
        names = known.setdefault(bench, bench_tests(bench))
        for name in point.sim_tests:
            if name not in names:
                near = difflib.get_close_matches(name, names, n=1)
                field = f"groups[{point.group}].sim_tests" if spec.grouped else "sim_tests"
                raise ConfigError(spec.source, field, f"{name!r} is not a test of {bench}"
                                  + (f"; did you mean {near[0]!r}?" if near else "")
                                  + f" (its tests: {', '.join(names)})")


def sweep_command(path: str, *, workers: int | None = None, scheduler: str | None = None,
                  out: str | None = None, retry_failed: bool = False, quiet: bool = False,
                  max_points: int = DEFAULT_MAX_POINTS) -> int:
    from tqdm import tqdm

    spec = load_sweep(path, max_points=max_points)
    check_sim_tests(spec)
    out_dir = Path(out) if out else SWEEPS_ROOT / spec.name
    bar = tqdm(total=len(spec.points), unit="point", desc=spec.name, disable=quiet, file=sys.stderr,
               dynamic_ncols=True)

    def progress(rec: dict, counts: dict) -> None:
        if rec["status"] != "ok":
            bar.write(f"failed: {rec['name']} ({rec.get('step')}): {rec.get('error')}")
        bar.update(1)
        bar.set_postfix(done=counts["done"], failed=counts["failed"], remaining=counts["remaining"])

    try:
        run = run_sweep(spec, out_dir, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                        progress=progress, on_start=lambda counts: (
                            bar.update(counts["cached"]),
                            bar.set_postfix(done=counts["done"], failed=counts["failed"],
                                            remaining=counts["remaining"])))
    finally:
        bar.close()
    paths = write_results(run)
    ok = len(run.records) - len(run.failed)
    print(f"{spec.name}: {ok} ok, {len(run.failed)} failed, {len(spec.points) - len(run.records)} not run "
          f"({run.ran} ran, {run.cached} cached) in {run.seconds:.1f} s on {run.backend} x{run.workers}"
          + (" -- interrupted; rerun to resume" if run.interrupted else ""))
    for kind, p in paths.items():
        print(f"  {kind}: {p}")
    if run.interrupted:
        raise Interrupted("rerun to resume")
    return 1 if run.failed else 0
