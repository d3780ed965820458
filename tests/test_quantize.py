"""Weight quantisers (golden_models/quantize.py): what they store fits the unit; limits
are refused in one line; MSE clipping and GPTQ do what they are for."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit.golden_models import quantize as qz
from lowbit.golden_models.bitserial import value_range

UNIT = qz.Limits(wbits_max=8, group_size=32, scale_bits=8, zero_point=True)


def weights(rows=16, k=256, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, k)) * rng.uniform(0.2, 2.0, (rows, 1))
    w[rng.random(w.shape) < 0.01] *= 8          # outliers
    return w


@pytest.mark.parametrize("bits,group,symmetric", [(4, 128, True), (4, 32, False), (3, 64, False),
                                                  (8, None, True), (2, 32, False), (2, 128, True)])
def test_rtn_stores_what_the_unit_holds(bits, group, symmetric):
    w = weights()
    q = qz.rtn(w, qz.Scheme(bits, group, symmetric), UNIT)
    lo, hi = value_range(bits, symmetric)
    assert q.q.min() >= lo and q.q.max() <= hi and q.q.dtype == np.int64
    assert q.scales.shape == (16, 256 // UNIT.group_size) == q.zeros.shape
    assert q.scales.min() >= 1 and q.scales.max() <= 255
    if symmetric:
        assert not q.zeros.any()
    else:
        assert q.zeros.min() >= 0 and q.zeros.max() <= hi
    err = np.abs(q.dequantize() - w)
    # within half a step everywhere except where the grid clips (none without mse: absmax)
    step = q.base[:, None] * np.repeat(q.scales, UNIT.group_size, axis=1)
    assert (err <= step * 0.5 + 1e-9).mean() > 0.999


def test_integer_scales_approach_float_scales_with_more_bits():
    w = weights()
    errs = [np.square(qz.rtn(w, qz.Scheme(4, 32), qz.Limits(8, 32, sb, True)).dequantize() - w).mean()
            for sb in (2, 4, 8, 16)]
    assert errs[0] > errs[1] > errs[3] and errs[2] < errs[1]


def test_mse_clipping_helps_low_bits():
    w = weights()
    plain = np.square(qz.rtn(w, qz.Scheme(3, 32), UNIT).dequantize() - w).sum()
    mse = np.square(qz.rtn(w, qz.Scheme(3, 32, mse=True), UNIT).dequantize() - w).sum()
    assert mse < plain


def test_gptq_beats_rtn_on_the_layer_output():
    rng = np.random.default_rng(1)
    w = weights(32, 128)
    x = rng.standard_normal((512, 128)) @ rng.standard_normal((128, 128)) * 0.3  # correlated
    h = qz.hessian(x)
    for scheme in (qz.Scheme(3, 32, False), qz.Scheme(4, 128, True)):
        r = qz.rtn(w, scheme, UNIT)
        g = qz.gptq(w, h, qz.Scheme(scheme.bits, scheme.group, scheme.symmetric, method="gptq"), UNIT)
        lo, hi = value_range(scheme.bits, scheme.symmetric)
        assert g.q.min() >= lo and g.q.max() <= hi
        assert np.array_equal(g.scales, r.scales) and np.array_equal(g.zeros, r.zeros)  # static groups
        err = lambda q: np.square(x @ (q.dequantize() - w).T).mean()
        assert err(g) < 0.8 * err(r)


@pytest.mark.parametrize("scheme,limits,message", [
    (qz.Scheme(4, 128), qz.Limits(2, 128, 8, False), "the unit takes 1..2 bits"),
    (qz.Scheme(4, 128, symmetric=False), qz.Limits(8, 128, 8, False), "needs a unit with zero_point"),
    (qz.Scheme(4, 32), qz.Limits(8, 128, 8, True), "not a multiple of the unit's group_size 128"),
    (qz.Scheme(4, 32), qz.Limits(8, 32, 0, True), "no group scales"),
    (qz.Scheme(4, 48), UNIT, "expected one of"),
    (qz.Scheme(1, 32), UNIT, "at least 2 bits"),
    (qz.Scheme(4, 32, method="awq"), UNIT, "expected rtn or gptq"),
])
def test_limits_refused_in_one_line(scheme, limits, message):
    with pytest.raises(ValueError, match=message) as info:
        qz.rtn(weights(), scheme, limits)
    assert "\n" not in str(info.value)


def test_bits_per_weight():
    assert qz.bits_per_weight(qz.Scheme(4, 128), UNIT, 384) == pytest.approx(4 + 8 / 128 + 16 / 384)
    assert qz.bits_per_weight(qz.Scheme(4, 32, False), UNIT, 384) == pytest.approx(4 + 12 / 32 + 16 / 384)
    assert qz.bits_per_weight(qz.Scheme(8, None), UNIT, 384) == pytest.approx(8 + 16 / 384)
