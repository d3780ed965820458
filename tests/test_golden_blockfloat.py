"""FP16/BF16 block-exponent alignment feeding the integer GEMV (golden_models.blockfloat)."""
import numpy as np
import pytest

from lowbit.golden_models import blockfloat
from lowbit.rtl_gen.families import parse_design


def _cfg(act_bits=8):
    return parse_design({"family": "lutgemv", "name": "dut", "params": dict(
        group=4, rows=1, bits_max=4, act_bits=act_bits, k_max=64)}, "<test>")


def _finite(rng, fmt, n):
    x = rng.standard_normal(n) * 2.0 ** rng.integers(-30, 10, n)
    x[rng.random(n) < 0.1] = 0.0
    return x.astype(np.float16) if fmt == "float16" else blockfloat.to_bfloat16(x.astype(np.float32))


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_decode_is_exact(fmt):
    x = _finite(np.random.default_rng(1), fmt, 4000)
    sign, m, e = blockfloat.decode(x, fmt)
    back = np.array([(-1.0) ** s * float(mi) * 2.0 ** ei for s, mi, ei in zip(sign, m, e)])
    assert (back == np.asarray(x, dtype=np.float64)).all()


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
@pytest.mark.parametrize("act_bits", [4, 8])
def test_alignment_error_is_at_most_half_a_step_unless_saturated(fmt, act_bits):
    rng = np.random.default_rng(act_bits)
    for _ in range(50):
        x = _finite(rng, fmt, 32)
        q, exps = blockfloat.align(x, fmt, act_bits, 8)
        limit = (1 << (act_bits - 1)) - 1
        assert np.abs(q).max() <= limit
        step = np.repeat(2.0 ** exps.astype(float), 8)
        err = np.abs(q * step - np.asarray(x, dtype=np.float64))
        saturated = np.abs(q) == limit
        assert (err[~saturated] <= step[~saturated] / 2).all()
        assert (err[saturated] <= step[saturated]).all()


def test_round_half_to_even_and_saturation():
    # block max 7.5 -> 3 magnitude bits for A4: shared exponent 0; 2.5 -> 2, 3.5 -> 4, 7.5 -> 8 -> 7
    q, exps = blockfloat.align(np.array([2.5, 3.5, -7.5, 0.5], np.float16), "float16", 4, 4)
    assert exps.tolist() == [0] and q.tolist() == [2, 4, -7, 0]


def test_bfloat16_rounding_is_half_to_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)
    x = np.array([one + ulp / 2, one + ulp * 1.5, one + ulp * 0.75], np.float32)
    assert blockfloat.to_bfloat16(x).tolist() == [1.0, 1.0 + 2 * float(ulp), 1.0 + float(ulp)]


@pytest.mark.parametrize("block", [4, 16, 64])
def test_block_gemv_is_the_exact_product_of_the_aligned_mantissas(block):
    rng = np.random.default_rng(block)
    cfg = _cfg()
    x = _finite(rng, "float16", 64)
    codes = rng.integers(0, 16, (3, 64))
    mantissa, exponent = blockfloat.block_gemv(cfg, codes, 8, x, "float16", block, 4)
    q, exps = blockfloat.align(x, "float16", 8, block)
    exact = sum(((codes[:, j * block:(j + 1) * block] - 8) @ q[j * block:(j + 1) * block]).astype(object)
                * (2 ** (int(s) - exponent)) for j, s in enumerate(exps.tolist()))
    assert list(mantissa) == list(exact)


def test_exactly_representable_activations_give_the_exact_float_gemv():
    x = np.array([1, -2, 3, 0.5, -0.25, 4, 6, -7.5], np.float16)  # 3 significant bits each at most
    codes = np.random.default_rng(0).integers(0, 4, (5, 8))
    mantissa, exponent = blockfloat.block_gemv(_cfg(), codes, 2, x, "float16", 4, 2)
    want = (codes - 2) @ np.asarray(x, dtype=np.float64)
    assert (blockfloat.to_float(mantissa, exponent) == want).all()


@pytest.mark.parametrize("exp_bits", [1, 3])
def test_window_alignment_feeds_the_shift_unit_exactly(exp_bits):
    rng = np.random.default_rng(exp_bits)
    cfg = parse_design({"family": "lutgemv", "name": "dut", "params": dict(
        group=4, rows=1, bits_max=4, act_bits=6, k_max=64, exp_bits=exp_bits)}, "<test>")
    for _ in range(20):
        x = _finite(rng, "bfloat16", 64)
        q, shifts, low = blockfloat.align_window(x, "bfloat16", 6, 4, exp_bits)
        assert 0 <= shifts.min() and shifts.max() <= (1 << exp_bits) - 1 and np.abs(q).max() <= 31
        exps = np.repeat(low + shifts, 4).astype(float)
        err = np.abs(q * 2.0 ** exps - np.asarray(x, dtype=np.float64))
        assert (err <= 2.0 ** exps).all()  # half a step, or one step where saturated
        codes = rng.integers(0, 16, (3, 64))
        y, exponent = blockfloat.window_gemv(cfg, codes, 8, x, "bfloat16", 4)
        assert exponent == low
        assert (y * 2.0 ** low == (codes - 8) @ (q * 2.0 ** exps)).all()
