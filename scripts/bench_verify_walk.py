"""``lowbit verify`` walked over every design in ``hw/`` (``bench_verify.py --walk``).

Each design runs as ``lowbit verify NAME`` without ``--mutants``: its cocotb bench with
coverage (fresh seed, printed and saved) and every stream proof of its family, in one shared
build folder (``build/bench_verify/walk/build``), the Verilator build cache and the proof
cache (``build/sim_cache``, ``build/sim_cache/formal``) shared, so designs with the same proof
variant solve it once. One record per design, ``build/bench_verify/walk/<design>.json``: bench
tests / failures / seed / cover bins, each proof (check, status, method, depth, solver
seconds, cached), the wall seconds, the load average before and after, the netlist hash
(a record of another netlist is shown as stale) and the failures in one line each.

Order (:func:`walk_order`): the small designs first, the large shapes (MiniLM / LLM layers,
long vectors) after them, ``softmax_*`` and ``lutgemv_ram_*`` last (their proofs run longest).
A design that raises (generation, build) is recorded as failed with the one-line reason.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design

LARGE = ("llm", "minilm", "k4096", "k1536", "n1024", "n512", "both_w8a8", "gemm")
LAST = ("softmax_", "lutgemv_ram_")


def walk_order(names) -> list[str]:
    """Small designs first, then the large shapes, then ``softmax_*`` / ``lutgemv_ram_*``."""
    def rank(name):
        last = name.startswith(LAST)
        large = any(part in name for part in LARGE)
        return (last, large, name)

    return sorted(names, key=rank)


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def walk_one(name: str, out: Path, cache_root: Path, netlist_hash, *, proof_timeout: float = 300,
             bench: bool = True) -> dict:
    """``lowbit verify NAME`` (no mutants); the walk record, also saved as ``out/NAME.json``."""
    from lowbit.scripts.verify import failures, verify

    config = load_design(catalogue()[name])
    record = {"design": name, "family": config.family, "netlist": netlist_hash(config),
              "proof_timeout": proof_timeout, "load_before": _load(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    start = time.monotonic()
    try:
        full = verify(config, out / "build", cache_root=cache_root, bench=bench,
                      proof_timeout=proof_timeout)
    except Exception as error:   # a step that could not run is a finding of the walk
        record.update(passed=False, seconds=round(time.monotonic() - start, 1),
                      failures=[f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                                if str(error) else type(error).__name__],
                      traceback=traceback.format_exc()[-2000:])
    else:
        b = full.get("bench")
        record.update(
            passed=full["passed"], seconds=full["seconds"], failures=failures(full),
            bench=None if b is None else {k: b[k] for k in ("tests", "failed", "seed", "coverage",
                                                            "seconds", "log")},
            formal={"seconds": full["formal"]["seconds"], "cached": full["formal"]["cached"],
                    "properties": full["formal"]["properties"]},
            verify_json=full["path"])
    record["load_after"] = _load()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"  walk {name}: {'passed' if record['passed'] else 'FAILED'} in {record['seconds']} s "
          f"(load {record['load_before']}-{record['load_after']})"
          + ("" if record["passed"] else ": " + "; ".join(record["failures"])), flush=True)
    return record


def walk(names, out: Path, cache_root: Path, netlist_hash, *, resume: bool = False,
         proof_timeout: float = 300) -> list[dict]:
    """:func:`walk_one` over ``names`` in :func:`walk_order`; with ``resume`` a design whose
    saved record is of the current netlist is not run again; ``proof_timeout``: seconds per
    solver job (recorded)."""
    records = []
    for name in walk_order(names):
        saved = saved_record(out, name)
        if resume and saved and saved["netlist"] == netlist_hash(load_design(catalogue()[name])):
            print(f"  walk {name}: kept {out / (name + '.json')} (same netlist)", flush=True)
            records.append(saved)
            continue
        records.append(walk_one(name, out, cache_root, netlist_hash, proof_timeout=proof_timeout))
    return records


def saved_record(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _proofs_short(rows: list[dict], timeout: float = 300) -> str:
    """``hold proven; vectors: bounded@44 / covered@44`` (``*``: served from the cache)."""
    counts: dict[str, list[str]] = {}
    for row in rows:
        group, _, count = row["check"].partition(":")
        status = row["status"]
        if status in ("bounded", "covered", "partial", "failed", "timeout"):
            status += f"@{row['depth']}"
        if status.startswith("partial") and "through step" in row.get("message", ""):
            status += (" (step " + row["message"].split("through step ")[1].split(" of")[0]
                       + f" in {timeout:g} s)")
        counts.setdefault(count or group, []).append(status + ("*" if row.get("cached") else ""))
    return "; ".join(f"{name}: {' / '.join(states)}" for name, states in counts.items())


def walk_table(records: list[dict], current_hash) -> list[str]:
    """The section's lines for the walk (from saved records; stale ones marked)."""
    lines = ["", "### `lowbit verify` over every design in hw/ (`--walk`)", "",
             "Each design as `lowbit verify NAME` without `--mutants`, one after the other on "
             "the 2 shared cores (fresh bench seed, printed in the record), proof results "
             "cached by content (`*`: served from the cache, its solver seconds those of the "
             "run that made it); proofs: hold on the design, each count's conservation / "
             "cover on the family's proof variant, status@depth in cycles (BMC `bounded`, "
             "`partial`: cut by the per-job timeout at the step named).", "",
             "| design | family | result | bench tests passed | cover bins hit/declared | "
             "proofs | seconds (bench / proofs) | load average | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    passed = 0
    for r in records:
        b = r.get("bench") or {}
        cov = b.get("coverage")
        tests = f"{b['tests'] - b['failed']}/{b['tests']}" if b else "n/a"
        bins = f"{cov['hit']}/{cov['bins']}" if cov else ("none declared" if b else "n/a")
        formal = r.get("formal") or {}
        proofs = _proofs_short(formal.get("properties", []), r.get("proof_timeout", 300)) or "n/a"
        secs = f"{r['seconds']} ({b.get('seconds', '-')} / {formal.get('seconds', '-')})"
        notes = list(r.get("failures") or [])
        if current_hash(r["design"]) != r["netlist"]:
            notes.insert(0, "stale: the netlist changed since this run")
        passed += bool(r["passed"])
        note = "; ".join(notes).replace("|", "\\|")
        lines.append(f"| {r['design']} | {r['family']} | {'passed' if r['passed'] else 'FAILED'} "
                     f"| {tests} | {bins} | {proofs} | {secs} | {r['load_before']}-"
                     f"{r['load_after']} | {note} |")
    cached = sum(row.get("cached", False) for r in records
                 for row in (r.get("formal") or {}).get("properties", []))
    total = sum(len((r.get("formal") or {}).get("properties", [])) for r in records)
    lines += ["", f"{passed} of {len(records)} designs passed; {cached} of {total} proof results "
              "served from the proof cache."]
    return lines


__all__ = ["walk", "walk_one", "walk_order", "walk_table", "saved_record"]
