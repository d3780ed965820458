"""Properties of the softmax golden model against the float softmax of the quantised inputs."""
import numpy as np
import pytest

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import parse_design


def _config(**params):
    return parse_design({"family": "softmax", "name": "dut", "params": {"input": "Q5.2", **params}}, "<test>")


def _rows(cfg, rng, count):
    """Random rows: full-range, narrow (close scores) and wide-spread (a few large ones)."""
    fmt = cfg.input
    for i in range(count):
        n = int(rng.integers(1, cfg.n_max + 1))
        kind = i % 3
        if kind == 0:
            x = rng.integers(fmt.min_int, fmt.max_int + 1, n)
        elif kind == 1:
            x = np.clip(rng.integers(fmt.min_int, fmt.max_int + 1) + rng.integers(-8, 9, n) * (1 << fmt.frac_bits) // 4,
                        fmt.min_int, fmt.max_int)
        else:
            x = rng.integers(fmt.min_int, fmt.min_int + (1 << fmt.frac_bits), n)
            x[rng.integers(0, n, 3)] = rng.integers(fmt.max_int // 2, fmt.max_int + 1, 3)
        yield x


@pytest.mark.parametrize("params,max_lsb", [
    (dict(input="Q5.2", output="UQ0.8", exp_order=1), 1.0),
    (dict(input="Q5.2", output="UQ0.8", exp_order=0, exp_segments=64), 1.0),
    (dict(input="Q6.9", output="UQ0.16", exp_order=2), 2.0),
    (dict(input="Q4.4", output="UQ1.7", exp_order=1, n_max=16), 1.0),
    (dict(input="Q5.2", output="UQ0.8", exp_order=1, max_mode="online"), 1.0),
    (dict(input="Q6.9", output="UQ0.16", exp_order=2, max_mode="online"), 2.0),
    (dict(input="Q4.4", output="UQ1.7", exp_order=1, n_max=16, max_mode="online"), 1.0),
])
def test_accuracy_and_row_sums(params, max_lsb):
    cfg = _config(**params)
    c = golden.constants_of(cfg)
    rng = np.random.default_rng(7)
    worst = 0.0
    # rising rows move the online max at every element: the most rescaling of the sum
    for x in [*_rows(cfg, rng, 600), *(np.sort(x) for x in _rows(cfg, rng, 150))]:
        out = golden.row_model(c, x)
        metrics = golden.row_metrics(cfg, x, out)
        worst = max(worst, metrics["max_err"])
        assert abs(metrics["sum_err"]) <= len(x) / 2 + 1, (x.tolist(), metrics)
        rounded = golden.row_metrics(cfg, x, golden.correctly_rounded(cfg.input, cfg.output, x))
        assert metrics["kl"] <= rounded["kl"] + cfg.output.lsb  # quantisation itself costs KL
    assert worst <= max_lsb


def test_exact_cases():
    cfg = _config(input="Q5.2", output="UQ0.8")
    c = golden.constants_of(cfg)
    assert golden.row_model(c, [17]).tolist() == [255]                 # 1.0 saturates
    assert golden.row_model(c, [3, 3]).tolist() == [128, 128]          # exactly one half
    assert golden.row_model(c, [5] * 4).tolist() == [64] * 4
    assert golden.row_model(c, [cfg.input.max_int, cfg.input.min_int]).tolist() == [255, 0]


def _online_reference(c, x, mask):
    """Two passes in the online mode's units: e against the row's final integer base-2 max."""
    t = (np.asarray(x, dtype=np.int64) * c.log2e) >> c.input.frac_bits
    top = -((-t) >> c.rf)
    live = ~np.asarray(mask, dtype=bool)
    row_max = int(top[live].max()) if live.any() else golden.online_tag_range(c)[0]
    return np.where(live, golden.exp2_neg(c, np.where(live, (row_max << c.rf) - t, 0)), 0)


@pytest.mark.parametrize("params", [dict(input="Q5.2", output="UQ0.8"),
                                    dict(input="Q6.9", output="UQ0.16", exp_order=2, mask=True)])
def test_online_pass_equals_two_passes_but_for_the_sum_rescale_floors(params):
    """The stored e, shifted to the final max, equal e computed against the final max (floor
    shifts compose); the rescaled sum lies between the sum of those e and that sum + n."""
    cfg = _config(max_mode="online", **params)
    c = golden.constants_of(cfg)
    rng = np.random.default_rng(3)
    rows = list(_rows(cfg, rng, 300))
    rescaled = 0
    for i, x in enumerate([*rows, *(np.sort(x) for x in rows)]):
        mask = rng.random(len(x)) < 0.2 if cfg.mask and i % 2 else np.zeros(len(x), dtype=bool)
        e, total = golden.online_pass(c, x, mask)
        direct = _online_reference(c, x, mask)
        assert e.tolist() == direct.tolist()
        assert direct.sum() <= total <= direct.sum() + len(x)
        rescaled += total > direct.sum()
        out = golden.row_model(c, x, mask)
        assert out.tolist() == golden._scale(c, direct, golden.reciprocal(c, total)).tolist()
    assert rescaled > 0, "coverage: no row whose sum the rescale floors changed"


def test_online_exact_cases():
    cfg = _config(input="Q5.2", output="UQ0.8", max_mode="online", mask=True)
    c = golden.constants_of(cfg)
    assert golden.row_model(c, [17]).tolist() == [255]                 # 1.0 saturates
    assert len(set(golden.row_model(c, [5] * 7).tolist())) == 1        # ties stay ties
    assert golden.row_model(c, [3, -7], [False, True]).tolist() == [255, 0]
    assert golden.row_model(c, [3, -7], [True, True]).tolist() == [0, 0]
    assert golden.row_model(c, [cfg.input.max_int, cfg.input.min_int]).tolist() == [255, 0]


def test_masked_elements_output_zero_and_do_not_count():
    cfg = _config(input="Q5.2", output="UQ0.8", mask=True)
    c = golden.constants_of(cfg)
    x = np.array([100, 3, 3, -7])
    out = golden.row_model(c, x, [True, False, False, True])
    assert out.tolist() == [0, 128, 128, 0]
    assert golden.row_model(c, x, [True] * 4).tolist() == [0] * 4
    assert golden.row_model(c, x, [True, True, False, True]).tolist() == [0, 0, 255, 0]


def test_exponentials_decrease_and_start_at_one():
    c = golden.constants_of(_config(input="Q6.9", output="UQ0.16"))
    e = golden.exponentials(c, np.arange(1 << 12))
    assert (np.diff(e) <= 0).all()
    assert abs(e[0] - (1 << c.ef)) <= 1 << (c.ef - c.hf)
    d = np.arange(0, 4096, 37)
    exact = np.exp(-d * c.input.lsb) * 2.0 ** c.ef
    assert np.max(np.abs(e[d] - exact) / 2.0 ** c.ef) < 2.0 ** -(c.output.frac_bits + 1)


def test_reciprocal_is_floor_division_and_fits():
    c = golden.constants_of(_config(input="Q5.2", output="UQ0.8", n_max=64))
    for total in (c.e_zero, c.e_zero + 1, c.sum_max // 3, c.sum_max):
        assert golden.reciprocal(c, total) == (1 << c.numerator_log2) // (total >> c.divisor_shift)
    assert golden.reciprocal(c, 0) == (1 << c.qb) - 1


def test_rows_are_cut_at_n_max():
    assert golden.split_rows([0] * 7, [0, 0, 1, 0, 0, 0, 0], 3) == [(0, 3), (3, 6)]
    assert golden.split_rows([0] * 4, [0, 0, 0, 1], 3) == [(0, 3), (3, 4)]


@pytest.mark.parametrize("params,field", [
    (dict(output="Q0.8"), "output"),
    (dict(input="UQ5.2"), "input"),
    (dict(exp_segments=12), "exp_segments"),
    (dict(n_max=1), "n_max"),
    (dict(max_mode="sideways"), "max_mode"),
    (dict(output="UQ3.8"), "output"),
    (dict(colour="red"), "colour"),
    (dict(output="UQ2.0", guard_bits=1), "guard_bits"),   # crashed the generator before
])
def test_bad_parameters_name_the_field(params, field):
    with pytest.raises(ConfigError, match=f"params.{field}"):
        _config(**params)
