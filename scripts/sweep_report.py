"""``lowbit report``: render the ``sweep`` and ``tools`` sections of BENCHMARKS.md (and the
plots under ``docs/benchmarks/``) from the latest sweep results: into ``build/report/`` by
default, into the committed files only with ``--write``.

Inputs: the ``results.json`` of every ``sweeps/*.yaml`` that has been run (its folder
``build/sweeps/<name>/``), or the files named on the command line; and the tools benchmark
``build/sweeps/_tools.json`` (written by :func:`scripts.bench_tools.run_tools_bench`, rerun with
``--tools-bench``). Only the two sections named here are rewritten; the others are left alone
(:func:`scripts.benchmarks_md.update_section`). Numbers are copied from the results, never typed.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.sweep_spec import load_sweep, sweep_name

from lowbit.rtl_gen.generate import write_atomic
from lowbit.scripts.benchmarks_md import BENCHMARKS, HEADER, markdown_table, update_section
from lowbit.scripts.sweep_metrics import APPROXIMATORS
from lowbit.scripts.sweep_plots import plot_accuracy_cost, plot_fmax, plot_model_accuracy, plot_pareto
from lowbit.scripts.sweep_results import load_results, rows

REPO = BENCHMARKS.parent
PLOTS = REPO / "docs" / "benchmarks"
SWEEPS = REPO / "sweeps"
RESULTS_ROOT = Path("build") / "sweeps"
REPORT_OUT = Path("build") / "report"
TOOLS_JSON = RESULTS_ROOT / "_tools.json"
COMMAND = "lowbit report"


def default_results() -> list[Path]:
    found = []
    for path in sorted(SWEEPS.glob("*.yaml")):
        try:
            name = sweep_name(path)   # the name only: expanding a large sweep could take hours
        except ConfigError:   # a broken sweep file is reported by `lowbit sweep`
            continue
        result = RESULTS_ROOT / name / "results.json"
        if result.is_file():
            found.append(result)
    return found


def _fmt(value, digits: int = 4) -> str:
    if value is None or value == "":
        return ""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _stale(doc: dict) -> list[str]:
    """Points whose cache key today differs from the one they ran under (sources/tools changed)."""
    from lowbit.scripts.sweep_engine import point_key, tool_versions

    try:
        spec = load_sweep(doc["source"])
    except Exception:  # noqa: BLE001 - the sweep file moved or broke: nothing to compare
        return []
    versions, ran = tool_versions(), {r["name"]: r["key"] for r in doc["records"]}
    return [p.name for p in spec.points if p.name in ran and point_key(p, versions) != ran[p.name]]


def _sweep_body(doc: dict, table: list[dict]) -> list[str]:
    recs = doc["records"]
    failed = [r for r in recs if r["status"] != "ok"]
    axes = sorted({k for r in table for k in r if k.startswith("axis:")})
    header = ["point", *[a.removeprefix("axis:") for a in axes], "target", "LUT4", "FF", "DSP", "BRAM",
              "Fmax MHz", "M results/s", "latency", "max err LSB", "mean err LSB", "sim tests"]
    body = [[r["point"], *[_fmt(r.get(a)) for a in axes], r.get("target") or "", _fmt(r.get("lut4")),
             _fmt(r.get("ff")), _fmt(r.get("dsp")), _fmt(r.get("bram")), _fmt(r.get("fmax_mhz")),
             _fmt(r.get("mitems_per_s")), _fmt(r.get("latency")), _fmt(r.get("max_err_lsb")),
             _fmt(r.get("mean_err_lsb")), _fmt(r.get("sim_tests"))] for r in table if r["status"] == "ok"]
    if any("cosine_min" in r for r in table):   # an evaluate: sweep (n/a: no role in the model)
        header += ["cosine min", "cosine mean", "Spearman", "bits / weight"]
        ok = [r for r in table if r["status"] == "ok"]
        for row, r in zip(body, ok):
            row += [_fmt(r.get(k)) for k in ("cosine_min", "cosine_mean", "spearman", "bits_per_weight")]
    lines = [f"### Sweep `{doc['sweep']}` ({doc['source']})\n", doc.get("description", "").strip() + "\n",
             f"{doc['points']} points, {len(recs) - len(failed)} ok, {len(failed)} failed"
             f"{', INTERRUPTED' if doc.get('interrupted') else ''}; last run {doc['finished']} on "
             f"{doc['backend']} x{doc['workers']} ({doc['ran']} points ran in {doc['seconds']:.0f} s, "
             f"{doc['cached']} from the cache).\n", markdown_table(header, body)]
    stale = _stale(doc)
    if stale:
        lines += [f"\nSince this run the sources or tools of {len(stale)} point(s) changed "
                  f"({', '.join(sorted({r['family'] for r in recs if r['name'] in stale}))}); the next "
                  f"`lowbit sweep {doc['source']}` redoes them: {', '.join(f'`{n}`' for n in stale)}."]
    if failed:
        lines += ["\nFailed points (recorded, the sweep went on):\n"]
        lines += [f"- `{r['name']}` at {r.get('step')}: {r.get('error')}" for r in failed]
    return lines


def _rerun_line(doc: dict, first: dict) -> str:
    """A second results file of the same sweep (e.g. run on Dask): counts, time, agreement."""
    key = lambda r: (r["point"], r.get("target"))  # noqa: E731
    before = {key(r): (r.get("lut4"), r.get("fmax_mhz")) for r in rows(first["records"]) if r["status"] == "ok"}
    now = {key(r): (r.get("lut4"), r.get("fmax_mhz")) for r in rows(doc["records"]) if r["status"] == "ok"}
    common = [k for k in now if k in before]
    same = sum(now[k] == before[k] for k in common)
    failed = sum(r["status"] != "ok" for r in doc["records"])
    return (f"Also run on {doc['backend']} x{doc['workers']} ({doc['finished']}): {len(doc['records']) - failed} "
            f"ok, {failed} failed, {doc['ran']} points in {doc['seconds']:.0f} s; LUT4 and Fmax identical "
            f"on {same} of {len(common)} point/target pairs the two runs share.\n")


def sweep_section(results: list[Path], root: Path = REPO) -> str:
    """The 'sweep' section; plots go to ``root/docs/benchmarks`` (linked relative to ``root``).
    A later results file of a sweep already shown is summarised in one line (plots count each
    point once)."""
    docs = [load_results(p) for p in results]
    firsts: dict[str, dict] = {}
    for doc in docs:
        firsts.setdefault(doc["sweep"], doc)
    all_rows = [row for doc in firsts.values() for row in rows(doc["records"])]
    lines = [f"## Design-space sweeps\n\nRegenerate: `lowbit sweep sweeps/<name>.yaml` then `{COMMAND}`. "
             "Each point was generated, simulated by its cocotb bench under Verilator (where the sweep "
             "says `sim`) and placed by Yosys + nextpnr; throughput = results per cycle x Fmax; "
             "errors come from the golden model (bit-exact to the RTL) against the correctly rounded "
             "float function. LUT4 counts include the pin shell of the flow.\n"]
    if not docs:
        return "\n".join(lines + ["No sweep results yet: run `lowbit sweep sweeps/demo.yaml`."])
    plots_dir = root / PLOTS.relative_to(REPO)
    plots = [plot_pareto(all_rows, fam, plots_dir) for fam in sorted({r["family"] for r in all_rows})]
    plots += [plot_accuracy_cost(all_rows, APPROXIMATORS, plots_dir, "ice40-up5k"), plot_fmax(all_rows, plots_dir),
              plot_model_accuracy(all_rows, plots_dir)]
    for path in filter(None, plots):
        lines.append(f"![{path.stem}]({path.relative_to(root).as_posix()})")
    lines.append("")
    for doc in firsts.values():
        lines += _sweep_body(doc, rows(doc["records"]))
        lines += [""] + [_rerun_line(d, doc) for d in docs if d["sweep"] == doc["sweep"] and d is not doc]
    return "\n".join(lines)


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def tools_section(results: list[Path], tools: dict | None) -> str:
    firsts: dict[str, dict] = {}
    for p in results:
        doc = load_results(p)
        firsts.setdefault(doc["sweep"], doc)
    recs = [r for doc in firsts.values() for r in doc["records"] if r["status"] == "ok"]
    lines = ["## Tools benchmark\n", f"Regenerate: `{COMMAND} --tools-bench` (speed-up) after a sweep "
             "(per-block figures: medians over the points of the latest sweep results, each timed when it "
             "ran; a Verilator build counts only where the point built its simulator itself).\n"]
    fresh = recs
    per_block = []
    for fam in sorted({r["family"] for r in fresh}):
        sub = [r for r in fresh if r["family"] == fam]
        sims = [r["sim"] for r in sub if r.get("sim")]
        per_block.append([fam, len(sub), _fmt(_median((r.get("generate") or {}).get("seconds") for r in sub), 3),
                          _fmt(_median(s.get("build_seconds") for s in sims), 3),
                          _fmt(_median(s.get("seconds") for s in sims), 3),
                          _fmt(_median(s.get("cycles_per_s") for s in sims), 3)])
    lines += ["### Per block (Verilog generation, Verilator build with ccache, cocotb simulation)\n",
              markdown_table(["family", "points", "generate s", "Verilator build s", "bench run s",
                              "simulated cycles/s"], per_block) if per_block else "No fresh points.", ""]
    synth = []
    for target in sorted({t for r in fresh for t in r.get("synth", {})}):
        reps = [r["synth"][target] for r in fresh if "error" not in r["synth"].get(target, {"error": 1})]
        step = lambda k: _median(rep["step_seconds"].get(k) for rep in reps)  # noqa: E731
        synth.append([target, len(reps), _fmt(_median(rep["seconds"] for rep in reps), 3),
                      _fmt(step("yosys"), 3), _fmt(step("nextpnr"), 3), _fmt(step("pack"), 3),
                      _fmt(_median(rep["lut4"] for rep in reps))])
    lines += ["### Synthesis per target (median over the sweep's points)\n",
              markdown_table(["target", "points", "total s", "yosys s", "nextpnr s", "pack s", "median LUT4"],
                             synth) if synth else "No synthesis in the latest results.", ""]
    if tools:
        lines += [f"### Sweep speed-up (`{tools['sweep']}`, {tools['points']} points, measured side by side "
                  f"on {tools['cores']} cores, load average {tools['load_before']:.2f} before; a shared machine, "
                  "so other work can slow any column; the Dask time includes starting its local cluster)\n",
                  markdown_table(["back end", "workers", "wall s", "speed-up vs 1 worker"],
                                 [[b["backend"], b["workers"], f"{b['seconds']:.1f}",
                                   f"{tools['runs'][0]['seconds'] / b['seconds']:.2f}x"] for b in tools["runs"]]),
                  "", "Tool versions: " + ", ".join(f"{k} {v}" for k, v in tools["versions"].items()), ""]
    else:
        lines.append(f"Speed-up not measured yet: run `{COMMAND} --tools-bench`.")
    return "\n".join(lines)


def _points_shown(section: str) -> int:
    """How many sweep points a rendered sweep section was made from."""
    return sum(int(n) for n in re.findall(r"^(\d+) points, \d+ ok", section, re.M))


def _section(text: str, name: str) -> str:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    return text.split(start, 1)[1].split(end, 1)[0] if start in text and end in text else ""


def report_command(results: list[str], *, tools_bench: bool = False, workers: int | None = None,
                   benchmarks: Path = BENCHMARKS, write: bool = False, force: bool = False,
                   out: Path = REPORT_OUT) -> int:
    """Render the sweep and tools sections. Without ``write`` the committed BENCHMARKS.md and
    plots stay as they are: a copy with the new sections (and the plots) goes to ``out``.
    With ``write`` they are rewritten in place, unless the new sweep section would show fewer
    points than the one it replaces (then ``force`` is needed)."""
    paths = [Path(p) for p in results] if results else default_results()
    for path in paths:
        if not path.is_file():
            raise ConfigError(str(path), "<file>", "no such results file; run `lowbit sweep "
                              "SWEEP.yaml` first, or name a results.json it wrote")
    benchmarks = Path(benchmarks)
    committed = benchmarks.read_text() if benchmarks.is_file() else HEADER
    target, root = (benchmarks, benchmarks.parent) if write else (Path(out) / benchmarks.name, Path(out))
    if write and not force:
        # count what the new section would show before anything (plots included) is written
        new_points = sum(load_results(p)["points"] for p in
                         {load_results(p)["sweep"]: p for p in reversed(paths)}.values())
        old_points = _points_shown(_section(committed, "sweep"))
        if new_points < old_points:
            raise ConfigError("<command line>", "--write", f"the sweep section of {benchmarks} shows "
                              f"{old_points} points; these results hold {new_points}; pass --force "
                              "to replace it with fewer, or leave out --write to write under "
                              f"{out}/")
    if tools_bench:
        from lowbit.scripts.bench_tools import run_tools_bench

        run_tools_bench(TOOLS_JSON, workers=workers)
    tools = json.loads(TOOLS_JSON.read_text()) if TOOLS_JSON.is_file() else None
    if not write:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, committed)
    update_section("sweep", sweep_section(paths, root), target)
    update_section("tools", tools_section(paths, tools), target)
    print(f"{target}: sections 'sweep' and 'tools' rewritten from {len(paths)} result file(s): "
          + ", ".join(map(str, paths)))
    if not write:
        print(f"  (the committed {benchmarks.name} is unchanged; `{COMMAND} --write` updates it)")
    return 0
