"""Golden model of the Hadamard rotation unit and the offline rotation of the weights.

The integer transform against the Sylvester matrix and the float reference, the stated
growth and output range (reached, never exceeded), the rounding (ties to even), the
config's one-line errors, the generator under Amaranth's simulator for small lengths, and
the rotations: fused weights reproduce the float model exactly, the rotation unit's
narrowing costs nothing measurable.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from lowbit.golden_models import hadamard as hd
from lowbit.golden_models import rotation as rot
from lowbit.golden_models.fixedpoint import shift_round_half_even
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.hadamard import HadamardUnit


def config(length, width=8, shift=0):
    return parse_design({"family": "hadamard", "name": "h",
                         "params": {"length": length, "width": width, "shift": shift}}, "<test>")


@pytest.mark.parametrize("length", [1, 2, 4, 64, 1024])
def test_wht_is_the_sylvester_matrix_product(length):
    rng = np.random.default_rng(length)
    x = rng.integers(-128, 128, (5, length))
    h = hd.hadamard_matrix(length)
    assert np.array_equal(hd.wht(x), x @ h.T)
    assert np.array_equal(h @ h.T, length * np.eye(length, dtype=np.int64))
    assert np.array_equal(hd.wht(hd.wht(x)), length * x)          # H H = N I


@pytest.mark.parametrize("length,width,shift", [(4, 3, 0), (8, 4, 3), (64, 8, 3), (64, 8, 6),
                                                (128, 12, 3), (1024, 8, 5), (1024, 8, 10)])
def test_output_range_is_exact_and_reached(length, width, shift):
    """The stated bounds hold for the extreme vectors and are reached by them."""
    cfg = config(length, width, shift)
    n = length
    lo_in, hi_in = -(1 << (width - 1)), (1 << (width - 1)) - 1
    h = hd.hadamard_matrix(n)
    worst_hi = np.where(h[-1] > 0, hi_in, lo_in)      # the last row: half +1, half -1
    vectors = np.array([[lo_in] * n, [hi_in] * n, worst_hi])
    y = hd.model(cfg, vectors)
    lo, hi = hd.output_bounds(width, cfg.log2_length, shift)
    assert y.min() == lo and y.max() == hi
    rng = np.random.default_rng(0)
    r = hd.model(cfg, rng.integers(lo_in, hi_in + 1, (64, n)))
    assert lo <= r.min() and r.max() <= hi
    assert cfg.out_width == width + cfg.log2_length - shift + (shift == cfg.log2_length)
    assert -(1 << (cfg.out_width - 1)) <= lo and hi < (1 << (cfg.out_width - 1))
    # one bit fewer would not hold the range
    assert lo < -(1 << (cfg.out_width - 2)) or hi >= (1 << (cfg.out_width - 2))


def test_rounding_is_half_to_even_and_within_half_an_lsb_of_float():
    cfg = config(64, 8, 3)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (200, 64))
    y = hd.model(cfg, x)
    exact = hd.wht(x)
    assert np.array_equal(y, shift_round_half_even(exact, 3))
    ties = (exact & 7) == 4
    assert ties.any() and np.all(y[ties] % 2 == 0)
    assert np.abs(y - hd.wht_float(x, 3)).max() <= 0.5


def test_model_refuses_what_the_unit_cannot_take():
    cfg = config(8, 4, 1)
    with pytest.raises(ValueError, match="takes 8"):
        hd.model(cfg, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="4-bit"):
        hd.model(cfg, np.full((1, 8), 8))


@pytest.mark.parametrize("params,field", [({"length": 64, "shift": 7}, "shift"),
                                          ({"length": 48}, "length"),
                                          ({"length": 4096, "width": 24}, "width")])
def test_config_errors_are_one_line(params, field):
    with pytest.raises(ConfigError) as err:
        parse_design({"family": "hadamard", "name": "h", "params": params}, "hw/x.yaml")
    message = str(err.value)
    assert "\n" not in message and f"params.{field}" in message


@pytest.mark.parametrize("length,shift", [(4, 1), (8, 3), (16, 2)])
def test_generator_matches_the_model_in_amaranth_simulation(length, shift):
    """Random gaps and backpressure (seed printed), whole vectors, `last` on every N-th."""
    seed = random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}")
    rng = random.Random(seed)
    cfg = config(length, 5, shift)
    dut = HadamardUnit(cfg)
    x = np.array([[rng.randint(-16, 15) for _ in range(length)] for _ in range(6)])
    x[0], x[1] = 15, -16
    expected = hd.model(cfg, x).ravel().tolist()
    flat, got = x.ravel().tolist(), []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def source(ctx):
        for v in flat:
            while rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.data, v)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        for _ in range(40 * len(flat) + 10 * dut.latency):
            ctx.set(dut.o.ready, int(rng.random() > 0.3))
            await ctx.tick()
            if len(got) == len(flat):
                break

    async def monitor(ctx):
        async for _, _, valid, ready, data, last in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload.data, dut.o.payload.last):
            if valid and ready:
                got.append((data, last))

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run()
    assert [d for d, _ in got] == expected, f"seed {seed}"
    assert [l for _, l in got] == [int(k % length == length - 1) for k in range(len(flat))]


def test_rotations_fused_into_the_weights_are_exact():
    """``(x R)(W R)^T = x W^T`` and the per-head value / output fusion, in float64."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((7, 384)), rng.standard_normal((20, 384))
    assert np.allclose(rot.rotate_float(x, 128) @ rot.fuse_input(w, 128).T, x @ w.T, atol=1e-10)
    wv, bv, wo = rng.standard_normal((384, 384)), rng.standard_normal(384), rng.standard_normal((384, 384))
    probs = rng.random((7, 7))
    wv2, bv2, wo2 = rot.fuse_heads(wv, bv, wo, 32)
    assert np.allclose((probs @ (x @ wv2.T + bv2)) @ wo2.T, (probs @ (x @ wv.T + bv)) @ wo.T, atol=1e-9)
    assert rot.plan_for([128, 512], 384, 1536, 32).online == {"q": 128, "k": 128, "v": 128,
                                                              "ffn1": 128, "ffn2": 512}
    with pytest.raises(ValueError, match="divides 384"):
        rot.plan_for([256], 384, 1536, 32)


def test_online_rotation_is_the_unit_golden_model():
    """``rotate_online`` = per-token narrowing, then the unit's model block by block."""
    cfg = config(128, 12, 3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 384)) * np.array([1, 10, 0.1, 3, 50])[:, None]
    y, saturated = rot.rotate_online(x, cfg)
    scale = np.abs(x).max(axis=1) / 2047
    codes = np.rint(x / scale[:, None]).astype(np.int64)
    blocks = hd.model(cfg, codes.reshape(15, 128)).reshape(5, 384)
    assert saturated == 0
    assert np.array_equal(y, blocks * (scale[:, None] * 8 / np.sqrt(128)))
    assert np.abs(y - rot.rotate_float(x, 128)).max() <= 2e-3 * np.abs(x).max()


@pytest.mark.parametrize("length,width,shift", [(4, 5, 0), (64, 8, 3), (1024, 8, 5), (512, 12, 5)])
def test_latency_is_the_documented_formula(length, width, shift):
    """``N + 2n + sum A(w_k) + R + 2`` (module docstring of rtl_gen.hadamard)."""
    from lowbit.rtl_gen.hadamard import adds

    unit = HadamardUnit(config(length, width, shift))
    unit._MustUse__silence = True
    n = unit.config.log2_length
    rounding = adds(unit.widths[-1] + 2) if shift else 1
    assert unit.latency == length + 2 * n + sum(map(adds, unit.widths)) + rounding + 2
    assert unit.capacity == unit.latency + 1
