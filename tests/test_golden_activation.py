"""Properties of the activation golden models against the float reference."""
import math

import numpy as np
import pytest

from lowbit.golden_models import activation as golden
from lowbit.golden_models.fixedpoint import QFormat, quantize_float, saturate, shift_round_half_even
from lowbit.rtl_gen.families import parse_design


def _config(**params):
    return parse_design({"family": "activation", "name": "dut", "params": params}, "<test>")


def test_round_half_even_is_exact_for_ties_and_negatives():
    values = np.arange(-64, 65, dtype=np.int64)
    for shift in range(0, 5):
        expected = np.array([round(v / 2 ** shift) for v in values.tolist()])  # Python rounds half to even
        assert (shift_round_half_even(values, shift) == expected).all()
        assert [shift_round_half_even(int(v), shift) for v in values] == expected.tolist()


def test_saturate_and_quantize_clamp_to_the_format():
    fmt = QFormat.parse("Q1.2")
    assert (fmt.min_int, fmt.max_int, fmt.width) == (-8, 7, 4)
    assert saturate(np.array([-100, 3, 100]), fmt).tolist() == [-8, 3, 7]
    assert quantize_float([0.125, 0.375, -0.125, 5.0], fmt).tolist() == [0, 2, 0, 7]


@pytest.mark.parametrize("text", ["Q4", "Q.3", "X1.2", "Q-1.2", ""])
def test_bad_format_names_the_allowed_form(text):
    with pytest.raises(ValueError, match="expected Q<int>.<frac>"):
        QFormat.parse(text)


def test_float_references_match_math():
    for x in (-3.0, -0.5, 0.0, 0.7, 2.5):
        assert golden.gelu_float(x) == pytest.approx(0.5 * x * (1 + math.erf(x / math.sqrt(2))), abs=1e-15)
        assert golden.silu_float(x) == pytest.approx(x / (1 + math.exp(-x)), abs=1e-15)
    t = np.linspace(0, 6, 50)
    for fn in golden.FUNCTIONS:  # f(x) = relu(x) - g(|x|) on both sides of zero
        f = golden.reference_float(fn, np.concatenate([t, -t]))
        g = golden.deviation_float(fn, t)
        assert np.allclose(f, np.concatenate([t - g, -g]), atol=1e-12)


@pytest.mark.parametrize("function", golden.FUNCTIONS)
@pytest.mark.parametrize("fmt,order,segments", [("Q3.4", 1, 16), ("Q3.4", 2, 8), ("Q4.11", 2, 32), ("Q2.9", 2, 32)])
def test_poly_engine_within_one_lsb_of_correct_rounding(function, fmt, order, segments):
    config = _config(function=function, input=fmt, order=order, segments=segments)
    codes = config.input.all_values()
    outputs = golden.model(config, codes)
    worst, mean = golden.error_lsb(outputs, golden.correctly_rounded(function, config.input, config.output, codes))
    assert worst <= 1, f"max error {worst} LSB"
    assert mean < 0.1
    if config.input.width >= 16:
        assert golden.coefficient_bits(config) <= 2048


def test_poly_fit_respects_segment_budget_and_is_deterministic():
    a = golden.fit_poly("silu", QFormat(4, 11), QFormat(4, 11), 2, 32, 4)
    golden.fit_poly.cache_clear()
    b = golden.fit_poly("silu", QFormat(4, 11), QFormat(4, 11), 2, 32, 4)
    assert a == b and a.segments <= 32 and a.storage_bits == a.segments * sum(a.widths)


def test_poly_output_saturates_when_the_output_format_is_narrower():
    config = _config(function="gelu", input="Q4.4", output="Q2.4")
    codes = config.input.all_values()
    out = golden.model(config, codes)
    assert out.max() == config.output.max_int and out.min() >= config.output.min_int
    assert (out[codes > 4 * 16] == config.output.max_int).all()


def test_table_is_exactly_the_correctly_rounded_function():
    config = _config(function="silu", method="table", input="Q2.5")
    codes = config.input.all_values()
    assert (golden.model(config, codes) ==
            golden.correctly_rounded("silu", config.input, config.output, codes)).all()


def test_ibert_matches_the_papers_float_algorithm_and_error_level():
    """Integer i-GELU vs. a direct float transcription of I-BERT's Algorithm 2."""
    config = _config(function="gelu", method="ibert", input="Q4.11")
    c = golden.ibert_constants(config.input, config.output)
    codes = config.input.all_values()
    out = golden.model(config, codes)
    x = config.input.to_float(codes)
    erf = np.sign(x) * (golden.IBERT_A * (np.minimum(np.abs(x / 1.4142), -golden.IBERT_B) + golden.IBERT_B) ** 2 + 1)
    float_ibert = x * 0.5 * (1 + erf)
    # the integer version differs from its float form only by its floors and the final rounding
    assert np.max(np.abs(out * config.output.lsb - float_ibert)) < 4 * config.output.lsb
    worst, _ = golden.error_lsb(out, golden.correctly_rounded("gelu", config.input, config.output, codes))
    assert 20 <= worst <= 60  # I-BERT's erf polynomial is ~0.018 off: tens of LSB at Q4.11
    assert c.b_int < 0 and c.c_int < 0 and c.one_int < 0
