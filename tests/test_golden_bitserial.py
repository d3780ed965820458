"""Properties of the bit-serial golden model: the plane-by-plane Horner model (what the RTL
does, with its accumulator bound checked at every step) equals the plain integer formula
for every mode, run-time precision, encoding and grouping; schedules and widths are right."""
import itertools

import numpy as np
import pytest

from lowbit.golden_models import bitserial as golden
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import parse_design


def _config(**params):
    return parse_design({"family": "bitserial", "name": "dut", "params": params}, "<test>")


@pytest.mark.parametrize("mode", golden.MODES)
@pytest.mark.parametrize("asigned", [True, False])
def test_horner_order_equals_the_formula_at_every_precision(mode, asigned):
    cfg = _config(mode=mode, rows=3, cols=2, lanes=4, group_size=8, k_max=32, wbits_max=4,
                  abits=4, asigned=asigned, scale_bits=4, zero_point=True)
    rng = np.random.default_rng(3)
    abits_choices = range(1, 5) if mode == "both_serial" else [None]
    for wbits, wsigned, abits, kind in itertools.product(range(1, 5), (True, False), abits_choices,
                                                         ("random", "extreme")):
        tile = golden.random_tile(cfg, rng, 32, wbits, wsigned, abits, kind=kind)
        assert (golden.horner_model(cfg, tile) == golden.model(cfg, tile)).all(), (wbits, wsigned, abits)


def test_formula_against_a_float_reference_with_ternary_weights():
    cfg = _config(rows=4, cols=1, lanes=8, group_size=32, k_max=128, wbits_max=2, abits=8)
    rng = np.random.default_rng(5)
    tile = golden.random_tile(cfg, rng, 128, 2, True, kind="ternary")
    assert set(np.unique(tile.weights)) <= {-1, 0, 1}
    dequantised = tile.weights * np.repeat(tile.scales, 32, axis=1)
    assert np.allclose(golden.model(cfg, tile), dequantised.astype(float) @ tile.acts.astype(float))
    assert (golden.horner_model(cfg, tile) == golden.model(cfg, tile)).all()


def test_extreme_values_reach_but_never_exceed_the_bounds():
    cfg = _config(rows=1, cols=1, lanes=4, group_size=8, k_max=16, wbits_max=3, abits=3,
                  scale_bits=2, zero_point=True)
    p = golden.plan(cfg)
    # unsigned weights at 7 with zero point 0 against activations at -4: |group| = 8 * 7 * 4
    tile = golden.Tile(weights=np.full((1, 16), 7), acts=np.full((16, 1), -4),
                       scales=np.full((1, 2), 3), zeros=np.zeros((1, 2), dtype=np.int64),
                       wbits=3, wsigned=False, abits=3)
    assert golden.horner_groups(cfg, tile).min() == -p.group_bound
    y = golden.model(cfg, tile)
    assert abs(int(y[0, 0])) == 2 * 3 * p.group_bound
    assert abs(int(y[0, 0])) < 1 << (p.result_bits - 1)


def test_schedule_orders_planes_msb_first_and_diagonals_descending():
    assert golden.schedule("weight_serial", 3, 8) == [(2, 0), (1, 0), (0, 0)]
    assert golden.schedule("parallel", 4, 8) == [(0, 0)]
    steps = golden.schedule("both_serial", 3, 2)
    assert sorted(steps) == sorted(itertools.product(range(3), range(2)))
    assert [i + j for i, j in steps] == sorted((i + j for i, j in steps), reverse=True)
    assert steps == [(2, 1), (2, 0), (1, 1), (1, 0), (0, 1), (0, 0)]


def test_cycles_scale_with_the_run_time_precision():
    cfg = _config(mode="both_serial", lanes=16, group_size=64, k_max=1024, wbits_max=8, abits=8)
    assert golden.ideal_cycles(cfg, 1024, 4, 8) == 64 * 32
    assert golden.ideal_cycles(cfg, 1024, 1, 1) == 64
    assert golden.ideal_cycles(cfg, 1024, 12, 0) == 64 * 8  # clamped like the hardware
    ws = _config(lanes=16, group_size=64, k_max=1024)
    assert [golden.ideal_cycles(ws, 1000, b) for b in (1, 2, 8)] == [63, 126, 504]


def test_rescalers_keep_up_with_the_shortest_group():
    for rows, cols, lanes, group in [(8, 1, 8, 64), (16, 2, 8, 32), (4, 4, 16, 32), (2, 1, 8, 8)]:
        p = golden.plan(_config(rows=rows, cols=cols, lanes=lanes, group_size=group, k_max=group * 4))
        assert p.rescalers * p.entries_per_rescaler >= rows * cols
        assert p.entries_per_rescaler + 3 <= max(4, p.chunks)


def test_tiles_that_do_not_fit_are_rejected():
    cfg = _config(rows=2, cols=1, lanes=4, group_size=8, k_max=16, wbits_max=4, abits=4)
    rng = np.random.default_rng(0)
    tile = golden.random_tile(cfg, rng, 16, 3, True)
    with pytest.raises(ValueError, match="weights outside -4..3"):
        golden.model(cfg, golden.Tile(**{**tile.__dict__, "weights": tile.weights * 0 + 5}))
    with pytest.raises(ValueError, match="multiple of 8 up to 16"):
        golden.model(cfg, golden.random_tile(cfg, rng, 24, 3, True))


@pytest.mark.parametrize("params,field,message", [
    (dict(lanes=8, group_size=12), "params.group_size", "not a multiple of lanes"),
    (dict(group_size=64, k_max=100), "params.k_max", "not a multiple of group_size"),
    (dict(mode="serial"), "params.mode", "weight_serial, both_serial, parallel"),
    (dict(wbits_max=9), "params.wbits_max", "from 1 to 8"),
    (dict(asigned="yes"), "params.asigned", "true or false"),
    (dict(abits=16, scale_bits=16, k_max=1 << 24, group_size=64, lanes=8), "params.k_max", "bits"),
])
def test_bad_parameters_name_the_field(params, field, message):
    with pytest.raises(ConfigError) as info:
        _config(**params)
    assert field in str(info.value) and message in str(info.value)
