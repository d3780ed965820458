"""``lowbit verify DESIGN``: the evidence for one design point, in one table and one file.

Steps (each can be left out; every one runs on the Verilog of the sources it is printed
beside):

1. **bench**: the family's cocotb bench under Verilator (``testbenches.runner``), seeded
   (printed; ``--seed`` replays), with its functional coverage (``testbenches.coverage``:
   declared bins hit / missed, exported beside ``results.xml``);
2. **formal**: every stream proof of the family (``testbenches.formal_families``): ``hold``
   on each output of the design, the declared beat counts (conservation through the beat
   ratio, and their cover) on the family's proof variant, proven by k-induction or bounded
   to a stated depth; each solver job's result cached by content (harness RTLIL, sby
   script, tool versions: ``testbenches.formal_cache``), marked in the table when served;
3. **mutation** (``--mutants N``): a seeded campaign of Yosys ``mutate`` faults through the
   bench (``testbenches.mutation``), cached by content; kill rate, equivalent mutants set
   aside, survivors with their ``rtl_gen`` line.

Writes ``<build>/<name>/verify.json`` (atomically: a temporary name, then a rename) and the
bench / proof / mutant files under ``<build>/<name>/verify/``. The result fails (exit 1,
one line) when a bench test fails, a declared cover bin is missed, or a proof fails; a BMC
stopped by its timeout short of its depth is reported ``partial`` with the step it reached
(named in the table and the last line), not as a failure.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from lowbit.rtl_gen.generate import generate, test_module, write_atomic
from lowbit.rtl_gen.outputs import claim_folder, folder_lock


def run_bench(config, generated, out: Path, *, seed: int | None, cache_root: Path) -> dict:
    """The bench with coverage: tests, failures, seed, file paths and the coverage summary."""
    from lowbit.testbenches.coverage import read_summary
    from lowbit.testbenches.runner import run_generated

    start = time.monotonic()
    result = run_generated(generated, test_module(config), cache_root=cache_root,
                           test_dir=out, seed=seed, check=False)
    coverage = read_summary(out)
    return {"tests": result.tests, "failed": result.failed, "seed": result.seed,
            "results": str(result.results_xml), "log": str(result.log),
            "coverage": coverage, "seconds": round(time.monotonic() - start, 1),
            "passed": bool(result.tests) and not result.failed
            and not (coverage and coverage["missed"])}


def run_formal(config, out: Path, *, cache: Path | None = None, timeout: float = 300) -> dict:
    from lowbit.testbenches.formal_families import prove_design

    start = time.monotonic()
    rows = prove_design(config, out, cache=cache, timeout=timeout)
    return {"properties": [row.__dict__ for row in rows],
            "cached": sum(r.cached for r in rows),
            # a BMC cut short by its timeout is reported (partial, its depth), not failed
            "passed": all(r.ok or r.status == "partial" for r in rows),
            "partial": [r.check for r in rows if r.status == "partial"],
            "seconds": round(time.monotonic() - start, 1)}


def run_mutation(config, generated, out: Path, *, mutants: int, seed: int,
                 cache_root: Path, progress: Callable[[str], None]) -> dict:
    from lowbit.testbenches.mutation import campaign

    return campaign(config, out, count=mutants, seed=seed, cache_root=cache_root,
                    progress=progress).as_dict()


def verify(config, build_root: Path = Path("build"), *, seed: int | None = None,
           bench: bool = True, formal: bool = True, mutants: int = 0, mutation_seed: int = 1,
           cache_root: Path | None = None, proof_timeout: float = 300,
           proof_cache: Path | None = None,
           progress: Callable[[str], None] = lambda text: None) -> dict:
    """Run the steps on ``config``; returns what ``verify.json`` holds (and writes it).
    Verilator builds are cached in ``cache_root`` (default ``<build_root>/sim_cache``), proof
    results by content in ``proof_cache`` (default ``<cache_root>/formal``;
    ``testbenches.formal_cache``); ``proof_timeout``: seconds per solver job."""
    build_root = Path(build_root)
    folder = build_root / config.name   # the design's folder, as generate/sim/synth write it
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    record: dict = {"design": config.name, "family": config.family, "params": config.params()}
    with folder_lock(folder, "lowbit verify"):
        generated = generate(config, build_root)
        record["verilog"] = str(generated.verilog)
        record["sha256"] = generated.sha256
        cache_root = Path(cache_root or build_root / "sim_cache").resolve()
        work = claim_folder(folder / "verify", option="--build-dir", what="verification runs")
        if bench:
            progress(f"bench {config.bench} under Verilator")
            record["bench"] = run_bench(config, generated, (work / "sim").resolve(), seed=seed,
                                        cache_root=cache_root)
        if formal:
            progress("stream proofs (SymbiYosys)")
            record["formal"] = run_formal(config, work / "formal",
                                          cache=Path(proof_cache or cache_root / "formal"),
                                          timeout=proof_timeout)
        if mutants:
            progress(f"mutation campaign: {mutants} mutants, seed {mutation_seed}")
            record["mutation"] = run_mutation(config, generated, work / "mutation",
                                              mutants=mutants, seed=mutation_seed,
                                              cache_root=cache_root, progress=progress)
        record["seconds"] = round(time.monotonic() - start, 1)
        record["passed"] = all(record[k]["passed"] for k in ("bench", "formal") if k in record)
        write_atomic(folder / "verify.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
    record["path"] = str(folder / "verify.json")
    return record


def failures(record: dict) -> list[str]:
    """One phrase per failed part of ``record`` (empty when it passed)."""
    out = []
    bench = record.get("bench")
    if bench:
        if not bench["tests"]:
            out.append(f"bench ran no test (log {bench['log']})")
        elif bench["failed"]:
            out.append(f"{bench['failed']} of {bench['tests']} bench tests failed (seed "
                       f"{bench['seed']}, log {bench['log']})")
        if bench["coverage"] and bench["coverage"]["missed"]:
            out.append("missed cover bins " + ", ".join(bench["coverage"]["missed"][:5]))
    for row in (record.get("formal") or {}).get("properties", []):
        if row["status"] not in ("proven", "bounded", "covered", "partial"):
            out.append(f"{row['check']} {row['status']}: {row['message']}")
    return out


def format_table(record: dict) -> str:
    """The one table ``lowbit verify`` prints."""
    lines = [f"## verify {record['design']} ({record['family']})", "",
             "| step | check | result | method | depth | seconds | note |",
             "|---|---|---|---|---|---|---|"]
    bench = record.get("bench")
    if bench:
        state = "passed" if bench["tests"] and not bench["failed"] else "FAILED"
        lines.append(f"| bench | {bench['tests']} cocotb tests | {state} | Verilator | | "
                     f"{bench['seconds']} | seed {bench['seed']} |")
        cov = bench["coverage"]
        if cov is None:
            lines.append("| bench | coverage | none declared | | | | |")
        else:
            note = ("missed: " + ", ".join(cov["missed"][:4])) if cov["missed"] else ""
            lines.append(f"| bench | coverage: {cov['points']} points | {cov['hit']}/{cov['bins']} "
                         f"bins | cocotb-coverage | | | {note} |")
    for row in (record.get("formal") or {}).get("properties", []):
        note = f"on {row['variant']}" if row["variant"] else "design itself"
        if row.get("cached"):
            note += "; from the proof cache (seconds of the run that made it)"
        if row["status"] not in ("proven", "covered", "bounded"):
            note += f"; {row['message']}"
        lines.append(f"| formal | {row['check']} | {row['status']} | {row['method']} | "
                     f"{row['depth']} | {row['seconds']} | {note} |")
    mutation = record.get("mutation")
    if mutation:
        errors = mutation.get("errors", 0)
        lines.append(f"| mutation | {mutation['mutants']} mutants (seed {mutation['seed']}) | "
                     f"{mutation['killed']} killed, {mutation['equivalent']} equivalent, "
                     f"{len(mutation['survivors'])} survived or undecided"
                     + (f", {errors} not buildable" if errors else "") + " | kill rate "
                     f"{mutation['kill_rate']:.1%} | | {mutation['seconds']} | "
                     f"{mutation.get('cached', 0)} from the cache; bench time "
                     f"{mutation.get('bench_seconds', 0)} s |")
        for survivor in mutation["survivors"][:10]:
            lines.append(f"| mutation | survivor {survivor['id']} | {survivor['mutation']} | | | | "
                         f"{survivor['source']} |")
    lines.append("")
    partial = (record.get("formal") or {}).get("partial") or []
    lines.append(f"{'PASSED' if record['passed'] else 'FAILED'} in {record['seconds']} s"
                 + (f" ({len(partial)} proof(s) partial: {', '.join(partial)}; BMC short of its "
                    "depth within the timeout)" if partial else "") + "; "
                 f"{record.get('path', 'verify.json')}")
    return "\n".join(lines)


def verify_command(config, args) -> int:
    """The CLI's ``verify``: run, print the table, fail in one line (``StepFailed``)."""
    from lowbit.scripts.cli_errors import StepFailed

    record = verify(config, Path(args.build_dir), seed=args.seed, bench=not args.no_bench,
                    formal=not args.no_formal, mutants=args.mutants,
                    mutation_seed=args.mutation_seed,
                    progress=lambda text: print(f"  .. {text}", flush=True))
    print(format_table(record))
    if not record["passed"]:
        raise StepFailed(f"verify {config.name}: " + "; ".join(failures(record)))
    return 0


__all__ = ["verify", "format_table", "failures", "verify_command"]
