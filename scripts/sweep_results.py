"""A sweep's result tables: ``results.json`` (every record, as run), ``results.csv`` (one row
per point and target, flat columns) and ``summary.md`` (Markdown: counts, table, failures).

All three are written atomically into the sweep's output folder by :func:`write_results`;
``lowbit report`` reads ``results.json`` back with :func:`load_results`.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from lowbit.rtl_gen.generate import write_atomic

from lowbit.scripts.benchmarks_md import markdown_table

#: a point's model-accuracy columns (``evaluate:`` sweeps; ``scripts/sweep_accuracy.py``)
ACCURACY_KEYS = ("cosine_min", "cosine_mean", "spearman", "bits_per_weight")


def accuracy_columns(rec: dict) -> dict:
    """Accuracy figures of an evaluated point, ``n/a`` where its family has no role in the
    model, nothing where it was not evaluated (or the evaluation failed: see ``error``)."""
    acc = rec.get("accuracy") or {}
    if acc.get("status") == "ok":
        return {k: acc[k] for k in ACCURACY_KEYS}
    return {k: "n/a" for k in ACCURACY_KEYS} if acc.get("status") == "n/a" else {}

COLUMNS = ["point", "family", "status", "target", "lut4", "ff", "carry", "dsp", "bram", "area",
           "area_unit", "fmax_mhz", "throughput_per_cycle", "mitems_per_s", "latency", "max_err_lsb",
           "mean_err_lsb", "cost_bits", *ACCURACY_KEYS, "sim_tests", "sim_cycles_per_s",
           "generate_s", "sim_s", "synth_s", "step", "error", "cached"]


def rows(records: list[dict]) -> list[dict]:
    """One flat row per (point, target); a point without synthesis gives one row."""
    out = []
    for rec in records:
        gen, sim, metrics = rec.get("generate") or {}, rec.get("sim") or {}, rec.get("metrics") or {}
        base = {"point": rec["name"], "family": rec["family"], "status": rec["status"],
                "latency": gen.get("latency"), "max_err_lsb": metrics.get("max_err_lsb"),
                "mean_err_lsb": metrics.get("mean_err_lsb"), "cost_bits": metrics.get("cost_bits"),
                "sim_tests": sim.get("tests"), "sim_cycles_per_s": sim.get("cycles_per_s"),
                "generate_s": gen.get("seconds"), "sim_s": sim.get("seconds"), "step": rec.get("step"),
                "error": rec.get("error"), "cached": rec.get("cached", False),
                **accuracy_columns(rec), **{f"axis:{k}": v for k, v in (rec.get("axes") or {}).items()}}
        synth = rec.get("synth") or {}
        if not synth:
            out.append(base)
        for target, rep in synth.items():
            row = dict(base, target=target)
            if rec["status"] != "ok" and str(rec.get("step", "")).startswith("synth:"):
                row.update(status="failed" if "error" in rep else "ok")  # per target
            if "error" not in rep:
                per_cycle = metrics.get("throughput_per_cycle") or 1.0
                row.update({k: rep.get(k) for k in ("lut4", "ff", "carry", "dsp", "bram", "area",
                                                    "area_unit", "fmax_mhz")},
                           throughput_per_cycle=per_cycle, synth_s=rep.get("seconds"),
                           mitems_per_s=round(per_cycle * rep["fmax_mhz"], 2))
            out.append(row)
    return out


def _columns(table: list[dict]) -> list[str]:
    axes = sorted({k for row in table for k in row if k.startswith("axis:")})
    return COLUMNS[:3] + axes + COLUMNS[3:]


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_columns(table), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def summary_markdown(run) -> str:
    table = rows(run.records)
    failed = run.failed
    lines = [f"# Sweep `{run.spec.name}`", "",
             f"{run.spec.description}".strip(), "",
             f"{len(run.spec.points)} points: {len(run.records) - len(failed)} ok, {len(failed)} failed, "
             f"{len(run.spec.points) - len(run.records)} not run; {run.ran} ran now, {run.cached} from the "
             f"cache; back end {run.backend} ({run.workers} workers), {run.seconds:.1f} s"
             + (" — INTERRUPTED" if run.interrupted else "") + ".", ""]
    shown = ["point", "status", "target", "lut4", "ff", "dsp", "bram", "fmax_mhz", "mitems_per_s",
             "latency", "max_err_lsb", "sim_tests"]
    if any("cosine_min" in row for row in table):
        shown[-1:-1] = ["cosine_min", "cosine_mean", "spearman", "bits_per_weight"]
    lines.append(markdown_table(shown, [[_cell(row.get(c)) for c in shown] for row in table]))
    if failed:
        lines += ["", "## Failed points", ""]
        lines += [f"- `{r['name']}` ({r.get('step')}): {r.get('error')}" for r in failed]
    return "\n".join(lines) + "\n"


def write_results(run) -> dict[str, Path]:
    out = Path(run.out_dir)
    doc = {"sweep": run.spec.name, "source": run.spec.source, "description": run.spec.description,
           "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "backend": run.backend, "workers": run.workers,
           "seconds": round(run.seconds, 3), "ran": run.ran, "cached": run.cached,
           "interrupted": run.interrupted, "points": len(run.spec.points), "tools": run.versions,
           "records": run.records}
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "summary.md"}
    write_atomic(paths["json"], json.dumps(doc, indent=1, default=str) + "\n")
    write_atomic(paths["csv"], to_csv(rows(run.records)))
    write_atomic(paths["md"], summary_markdown(run))
    return paths


def load_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())
