"""Verification figures per family: mutation kill rates, survivors with their source line,
and the stream proofs, for BENCHMARKS.md's *Verification* section.

    python scripts/bench_verify.py [--mutants 100] [--seed 1] [--design NAME ...]
                                   [--no-formal] [--reuse | --from-records] [--coverage]
                                   [--proofs] [--write]
    python scripts/bench_verify.py --walk [--design NAME ...] [--resume]

For each design (default: one small design per family, :data:`DESIGNS`; ``--reuse`` takes a design's
saved ``record.json`` when its netlist hash, mutant count and seed are unchanged) it runs a mutation
campaign (``testbenches.mutation.campaign``: Yosys ``mutate -list N -seed S`` on the
generated netlist, each mutant through the family's cocotb bench, survivors checked for
equivalence; results cached by content under ``build/bench_verify/``, so a rerun or a larger
``--mutants`` reuses every mutant already run) and, unless ``--no-formal``, every stream
proof of the design (``testbenches.formal_families.prove_design``). ``--coverage`` runs each
design's bench once more on the current sources (fresh seed, printed) for the coverage
table (saved under ``build/bench_verify/<name>/coverage/``; without it the saved runs are
shown); ``--proofs`` likewise runs every stream proof of each design on the current
sources (``proofs/``; without it a saved run of the current netlist, else the campaign's
own proofs, are shown). Without ``--write`` the section is printed; with it, BENCHMARKS.md's ``verify``
section is replaced.

``--walk`` runs ``lowbit verify`` (no ``--mutants``) over every design in ``hw/`` (or the
``--design`` names), small designs first (``scripts/bench_verify_walk.py``), one record per
design in ``build/bench_verify/walk/<design>.json`` (``--resume``: keep the records of an
unchanged netlist), and prints the walk table; the section shows the saved walk records.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.scripts.bench_verify_walk import saved_record, walk, walk_order, walk_table
from lowbit.scripts.benchmarks_md import update_section
from lowbit.testbenches.coverage import read_summary
from lowbit.testbenches.formal_families import prove_design
from lowbit.testbenches.mutation import campaign

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench_verify"
WALK = OUT / "walk"
#: one small design per family (its bench runs in seconds)
DESIGNS = ("gelu_q3_4", "softmax_q4_4_u1_7_n16", "lutgemv_g4_n8", "gemv_mult_w2",
           "bitserial_w2a8", "hadamard_n64")


def netlist_hash(config) -> str:
    """SHA-256 of the design's RTLIL (what the mutants are made from)."""
    from amaranth.back import rtlil

    from lowbit.rtl_gen.generate import build_component

    return hashlib.sha256(rtlil.convert(build_component(config), name=config.name).encode()).hexdigest()


def run_design(name: str, mutants: int, seed: int, formal: bool, reuse: bool = False) -> dict:
    config = load_design(catalogue()[name])
    digest = netlist_hash(config)
    saved = OUT / name / "record.json"
    if reuse and saved.is_file():
        record = json.loads(saved.read_text())
        if (record.get("netlist") == digest and record["mutation"]["mutants"] == mutants
                and record["mutation"]["seed"] == seed and ("formal" in record) >= formal):
            print(f"  {name}: reused {saved} (same netlist, mutants and seed)", flush=True)
            record.setdefault("coverage", read_summary(OUT / name / "mutation" / "reference" / "sim"))
            return record
    start = time.monotonic()
    result = campaign(config, OUT / name / "mutation", count=mutants, seed=seed,
                      cache_root=ROOT / "build" / "sim_cache",
                      progress=lambda text: print(f"  {name}: {text}", flush=True))
    record = {"design": name, "family": config.family, "netlist": digest,
              "mutation": result.as_dict(),
              # the bins the unmutated netlist's bench run declared and hit
              "coverage": read_summary(OUT / name / "mutation" / "reference" / "sim")}
    if formal:
        record["formal"] = [row.__dict__ for row in prove_design(config, OUT / name / "formal")]
    record["seconds"] = round(time.monotonic() - start, 1)
    (OUT / name).mkdir(parents=True, exist_ok=True)
    (OUT / name / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


SURVIVORS = ROOT / "testbenches" / "survivors"


def load_explained(folder: Path = SURVIVORS) -> dict[tuple[str, str], str]:
    """The survivors explained by reading the netlist and the generator, by (design,
    mutation): why the bench cannot see them, one file per design
    (``testbenches/survivors/<design>.yaml``: a list of ``{mutation, why}``)."""
    import yaml

    explained = {}
    for path in sorted(folder.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text()) or []:
            explained[(path.stem, entry["mutation"])] = entry["why"]
    return explained


EXPLAINED = load_explained()


def explain(design: str, survivor: dict) -> str:
    """The survivor's explanation, its ``|`` escaped for a Markdown table cell."""
    return EXPLAINED.get((design, survivor["mutation"]), "not explained yet").replace("|", "\\|")


def run_coverage(name: str) -> dict:
    """The design's bench (fresh seed, printed) on the current sources with its cover bins:
    ``{"tests", "failed", "seed", "coverage"}``, also saved as ``coverage/record.json``."""
    from lowbit.rtl_gen.generate import generate, test_module
    from lowbit.testbenches.runner import run_generated

    config = load_design(catalogue()[name])
    folder = OUT / name / "coverage"
    generated = generate(config, OUT / name / "generated")
    result = run_generated(generated, test_module(config), cache_root=ROOT / "build" / "sim_cache",
                           test_dir=folder, check=False)
    record = {"tests": result.tests, "failed": result.failed, "seed": result.seed,
              "coverage": read_summary(folder), "sha256": generated.sha256}
    (folder / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"  {name}: bench {record['tests'] - record['failed']}/{record['tests']} passed, seed "
          f"{record['seed']}, coverage {record['coverage']}", flush=True)
    return record


def saved_coverage(name: str) -> dict | None:
    path = OUT / name / "coverage" / "record.json"
    return json.loads(path.read_text()) if path.is_file() else None


def section(records: list[dict], command: str, coverage_runs: dict[str, dict],
            proof_runs: dict[str, list], timings: list[dict] = (), stale: list[str] = (),
            walked: list[dict] = ()) -> str:
    lines = ["## Verification (`lowbit verify`: mutation, stream proofs)", "",
             f"Regenerate: `{command}` (mutants: Yosys `mutate -list N -seed S` on the "
             "generated netlist, each through the family's cocotb bench under Verilator; "
             "a surviving mutant is checked for equivalence with Yosys `equiv_*`, then a "
             "BMC of the miter from reset).", "",
             "### Mutation kill rates", "",
             "| design | family | mutants | killed | equivalent | survived | undecided | "
             "not buildable | kill rate | explained unobservable | kill rate of the rest | "
             "bench s per mutant | 100 mutants (min) | campaign s (cached) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        m = r["mutation"]
        survived = sum(s["status"] == "survived" for s in m["survivors"])
        undecided = sum(s["status"] == "undecided" for s in m["survivors"])
        # older records: each mutant's own wall time (its equivalence check included)
        spent = m.get("bench_seconds") or sum(x["seconds"] for x in m.get("results", []))
        per = spent / m["mutants"] if m["mutants"] else 0
        # an old record served from the cache kept no run times: its wall times say nothing
        timed = bool(m.get("bench_seconds")) or not any(
            "(cached)" in x.get("detail", "") for x in m.get("results", []))
        explained = sum((r["design"], x["mutation"]) in EXPLAINED for x in m["survivors"])
        live = m["mutants"] - m["equivalent"] - m.get("errors", 0) - explained
        rest = m["killed"] / live if live else 1.0
        lines.append(f"| {r['design']} | {r['family']} | {m['mutants']} | {m['killed']} | "
                     f"{m['equivalent']} | {survived} | {undecided} | {m.get('errors', 0)} | "
                     f"{m['kill_rate']:.1%} | {explained} | {rest:.1%} | "
                     + (f"{per:.1f} | {per * 100 / 60:.0f} | " if timed else
                        "n/a (record served from the cache) | n/a | ")
                     + f"{m['seconds']} ({m.get('cached', 0)}) |")
    goals = []
    for r in records:
        m = r["mutation"]
        explained = sum((r["design"], x["mutation"]) in EXPLAINED for x in m["survivors"])
        live = m["mutants"] - m["equivalent"] - m.get("errors", 0) - explained
        rest = m["killed"] / live if live else 1.0
        size = "met" if m["mutants"] >= 100 else f"not met ({m['mutants']})"
        rate = ("met" if m["kill_rate"] >= 0.97 else
                f"not met by the tool's verdicts alone ({m['kill_rate']:.1%}), "
                + ("met" if rest >= 0.97 else "not met") + f" with the explained survivors set "
                f"aside ({rest:.1%})")
        goals.append(f"{r['design']}: 100 mutants {size}; 97 % {rate}")
    lines += ["", "Goals (issue 16: at least 100 mutants per family, at least 97 % of the "
              "non-equivalent ones killed): " + "; ".join(goals) + "."]
    lines += [f"\nNot in the table: {text}." for text in stale]
    lines += ["", "Bench seconds per mutant: the Verilator build (ccache) and the bench run of "
              "one mutant as it really ran (a result served from the cache keeps the time of "
              "its run); 100 mutants: that time a hundred times over, one mutant at a time "
              "(`--jobs 1`: the machine's 2 cores are shared), plus up to 2 x 120 s of "
              "equivalence check per survivor; kill rate = killed / (mutants - equivalent - "
              "not buildable); the kill rate of the rest also sets aside the survivors explained "
              "as unobservable below (argued from the netlist, not proven by the tool); the "
              "campaign seconds also hold the equivalence checks. "
              "Records older than the per-mutant bench times use each mutant's wall time."]
    lines += ["", "### Functional coverage (`--coverage`: the design's bench on the current "
              "sources, fresh seed)", "",
              "| design | bench | seed | cover points | bins hit | missed |",
              "|---|---|---|---|---|---|"]
    for name, run in coverage_runs.items():
        cov = run["coverage"]
        state = f"{run['tests'] - run['failed']}/{run['tests']} passed"
        lines.append(f"| {name} | {state} | {run['seed']} | " + (
            f"{cov['points']} | {cov['hit']}/{cov['bins']} | "
            f"{', '.join(cov['missed']) or 'none'} |" if cov else "none declared | | |"))
    survivors = [(r["design"], s) for r in records for s in r["mutation"]["survivors"]]
    lines += ["", "### Survivors (mutation, source line, equivalence verdict)", ""]
    if survivors:
        lines += ["| design | mutant | mutation | source | verdict | explanation |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {d} | {s['id']} | `{s['mutation']}` | {s['source']} | {s['status']} | "
                  f"{explain(d, s)} |" for d, s in survivors]
    else:
        lines.append("None.")
    if timings:
        lines += ["", "### `lowbit verify` without `--mutants` (`--verify-time`)", "",
                  "| design | result | seconds | bench s | proofs s | load average | cores |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {t['design']} | {'passed' if t['passed'] else 'FAILED'} | {t['seconds']} | "
                  f"{t['bench']} | {t['formal']} | {t['load']} | {t['cores']} |"
                  for t in timings]
        lines.append("")
        lines.append("Goal: under two minutes on 2 cores for a small design (a fresh build "
                     "folder and a fresh proof cache, so every proof is solved; the Verilator "
                     "build cache shared, so an unchanged design is not rebuilt).")
    # proofs: a --proofs run of the current netlist, else the campaign record's own
    proofs = {r["design"]: r["formal"] for r in records if "formal" in r}
    proofs.update(proof_runs)
    if proofs:
        lines += ["", "### Stream proofs (`testbenches/formal_families.py`)", "",
                  "| design | check | result | method | depth | seconds | on |",
                  "|---|---|---|---|---|---|---|"]
        for design, rows in proofs.items():
            for p in rows:
                lines.append(f"| {design} | {p['check']} | {p['status']} | {p['method']} | "
                             f"{p['depth']} | {p['seconds']} | {p['variant'] or 'the design'} |")
    if walked:
        lines += walk_table(walked, _current_hash)
        lines.append("")
        lines.append("Regenerate: `python scripts/bench_verify.py --walk` (every design; "
                     "`--resume` keeps the records of unchanged netlists).")
    return "\n".join(lines)


def _current_hash(name: str) -> str | None:
    designs = catalogue()
    return netlist_hash(load_design(designs[name])) if name in designs else None


def saved_walk() -> list[dict]:
    """The saved walk records of the designs in hw/, in walk order."""
    return [r for r in (saved_record(WALK, n) for n in walk_order(catalogue())) if r]


def run_proofs(name: str) -> list[dict]:
    """Every stream proof of the design on the current sources, saved (with the netlist
    hash) as ``proofs/record.json``."""
    config = load_design(catalogue()[name])
    rows = [row.__dict__ for row in prove_design(config, OUT / name / "proofs")]
    (OUT / name / "proofs" / "record.json").write_text(
        json.dumps({"netlist": netlist_hash(config), "formal": rows}, indent=1) + "\n")
    print(f"  {name}: " + ", ".join(f"{r['check']} {r['status']}" for r in rows), flush=True)
    return rows


def run_verify_time(name: str) -> dict:
    """``lowbit verify NAME`` without ``--mutants`` (bench with coverage, every proof), timed,
    in a fresh build folder with a fresh proof cache (the Verilator build cache shared):
    seconds, the load average
    and the cores it ran beside, saved as ``verify_time.json``."""
    import os
    import shutil

    from lowbit.scripts.verify import verify

    build = OUT / name / "verify_build"
    shutil.rmtree(build, ignore_errors=True)
    load = os.getloadavg()[0]
    # the proof cache fresh too (in the build folder): every proof really solved
    record = verify(load_design(catalogue()[name]), build, cache_root=ROOT / "build" / "sim_cache",
                    proof_cache=build / "formal_cache")
    result = {"design": name, "seconds": record["seconds"], "passed": record["passed"],
              "bench": record["bench"]["seconds"], "formal": record["formal"]["seconds"],
              "proofs_cached": record["formal"]["cached"],
              "load": round((load + os.getloadavg()[0]) / 2, 1), "cores": os.cpu_count()}
    (OUT / name / "verify_time.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"  {name}: lowbit verify {result}", flush=True)
    return result


def saved_verify_time(name: str) -> dict | None:
    path = OUT / name / "verify_time.json"
    return json.loads(path.read_text()) if path.is_file() else None


def saved_proofs(name: str) -> list[dict] | None:
    """A saved --proofs run whose netlist is the current one."""
    path = OUT / name / "proofs" / "record.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    fresh = record["netlist"] == netlist_hash(load_design(catalogue()[name]))
    return record["formal"] if fresh else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--design", action="append", help=f"default: {', '.join(DESIGNS)}")
    parser.add_argument("--no-formal", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a design's saved record when its netlist, mutants and seed match")
    parser.add_argument("--from-records", action="store_true",
                        help="only assemble the section from the designs' saved records (each as "
                             "it was run; the ones whose netlist changed since are left out)")
    parser.add_argument("--coverage", action="store_true",
                        help="run each design's bench once more on the current sources for the "
                             "coverage table (else the saved runs of --coverage are shown)")
    parser.add_argument("--proofs", action="store_true",
                        help="run every stream proof of each design on the current sources "
                             "(else saved runs of the current netlist, or the campaign's own)")
    parser.add_argument("--verify-time", action="append", default=[], metavar="DESIGN",
                        help="time lowbit verify DESIGN without --mutants (saved; the section "
                             "shows the saved timings)")
    parser.add_argument("--write", action="store_true", help="replace BENCHMARKS.md's section")
    parser.add_argument("--walk", action="store_true",
                        help="lowbit verify (no --mutants) over every design in hw/ (or the "
                             "--design names), small ones first; records in build/bench_verify/walk/")
    parser.add_argument("--proof-timeout", type=float, default=300,
                        help="with --walk: seconds per solver job (default 300, as lowbit verify)")
    parser.add_argument("--resume", action="store_true",
                        help="with --walk: keep the saved record of a design whose netlist is unchanged")
    args = parser.parse_args(argv)
    if args.walk:
        walked = walk(args.design or sorted(catalogue()), WALK, ROOT / "build" / "sim_cache",
                      netlist_hash, resume=args.resume, proof_timeout=args.proof_timeout)
        print("\n".join(walk_table(walked, _current_hash)))
        return 0 if all(r["passed"] for r in walked) else 1
    stale: list[str] = []
    if args.from_records:
        records = []
        for name in args.design or DESIGNS:
            saved = OUT / name / "record.json"
            record = json.loads(saved.read_text()) if saved.is_file() else None
            if record and record.get("netlist") == netlist_hash(load_design(catalogue()[name])):
                record.setdefault("coverage", read_summary(OUT / name / "mutation" / "reference" / "sim"))
                records.append(record)
            else:
                print(f"  {name}: no fresh record (not run, or its netlist changed)", file=sys.stderr)
                if record:
                    m = record["mutation"]
                    stale.append(f"{name}: its last campaign ({m['mutants']} mutants, "
                                 f"{m['killed']} killed, {m['equivalent']} equivalent) ran on "
                                 "an older netlist; not rerun on the current one")
                else:
                    stale.append(f"{name}: no campaign run")
    else:
        records = [run_design(name, args.mutants, args.seed, not args.no_formal, args.reuse)
                   for name in (args.design or DESIGNS)]
    command = "python scripts/bench_verify.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.from_records:   # name the runs the records came from
        command = "; ".join(f"python scripts/bench_verify.py --design {r['design']} --mutants "
                            f"{r['mutation']['mutants']} --seed {r['mutation']['seed']}"
                            + ("" if "formal" in r else " --no-formal")
                            + ("" if r["mutation"].get("list_size") else
                               f" (run before lists of 100: its mutants are -list "
                               f"{r['mutation']['mutants']} itself)") for r in records)
    names = args.design or DESIGNS
    coverage_runs = {name: run_coverage(name) if args.coverage else saved_coverage(name)
                     for name in names}
    proof_runs = {name: run_proofs(name) if args.proofs else saved_proofs(name)
                  for name in names}
    for name in args.verify_time:
        run_verify_time(name)
    timings = [t for t in (saved_verify_time(name) for name in names) if t]
    if args.from_records:
        command += ("; python scripts/bench_verify.py --from-records --coverage --proofs"
                    + "".join(f" --verify-time {t['design']}" for t in timings))
    text = section(records, command.strip(),
                   {name: run for name, run in coverage_runs.items() if run},
                   {name: rows for name, rows in proof_runs.items() if rows}, timings, stale,
                   saved_walk())
    print(text)
    if args.write:
        update_section("verify", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
