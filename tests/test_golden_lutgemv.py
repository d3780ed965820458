"""The GEMV golden models: T-MAC's table arithmetic equals (Q - z) @ x; packing; configs."""
import numpy as np
import pytest

from lowbit.golden_models import lutgemv as golden
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import parse_design


def _config(family="lutgemv", **params):
    return parse_design({"family": family, "name": "dut", "params": params}, "<test>")


@pytest.mark.parametrize("g", [2, 3, 4])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("symmetric", [True, False])
def test_lut_gemv_equals_the_integer_product(g, bits, symmetric):
    rng = np.random.default_rng(g * 10 + bits)
    for k in (g, 8 * g, 64 * g):
        codes = rng.integers(0, 1 << bits, (5, k))
        x = rng.integers(-128, 128, k)
        for zero in {0, 1 << (bits - 1), (1 << bits) - 1}:
            assert (golden.lut_gemv(codes, zero, x, bits, g, symmetric) ==
                    golden.reference(codes, zero, x)).all()


def test_signed_weights_are_codes_with_the_mid_zero_point():
    w = np.array([[-2, -1, 0, 1]])
    x = np.array([3, -5, 7, 11])
    assert golden.lut_gemv(w + 2, 2, x, 2, 2).tolist() == (w @ x).tolist()


def test_half_table_mirrors_the_full_table():
    x = np.array([5, -7, 100, -128, 3, 1, -1, 127])
    full, half = golden.tables(x, 4), golden.half_tables(x, 4)
    assert (full[:, 8:] == half).all()
    assert (full[:, ::-1] == -full).all()  # T[~idx] = -T[idx]


def test_extremes_reach_the_accumulator_bound_exactly():
    cfg = _config(group=4, rows=2, bits_max=4, k_max=64)
    bound = 15 * 128 * 64
    low = np.full(64, -128)
    assert golden.lut_gemv(np.zeros((1, 64), int), 15, low, 4, 4)[0] == bound
    assert golden.lut_gemv(np.full((1, 64), 15), 0, low, 4, 4)[0] == -bound
    assert golden.acc_width(cfg) == 18 and bound < 1 << 17


def _unpack_lut(cfg, beats, m, k, bits):
    codes = np.zeros((m, k), dtype=np.int64)
    it = iter(beats)
    for t in range(m // cfg.rows):
        for i in range(bits - 1, -1, -1):
            for j in range(k // cfg.group):
                beat = next(it)
                for r in range(cfg.rows):
                    for lane in range(cfg.group):
                        codes[t * cfg.rows + r, j * cfg.group + lane] |= ((beat >> (r * cfg.group + lane)) & 1) << i
    return codes


def test_weight_packing_round_trips_both_layouts():
    rng = np.random.default_rng(7)
    lut = _config(group=3, rows=4, bits_max=3, k_max=48)
    codes = rng.integers(0, 8, (8, 24))
    beats = golden.weight_beats(lut, codes, 3)
    assert len(beats) == golden.ideal_cycles(lut, 8, 24, 3) == 2 * 3 * 8
    assert (_unpack_lut(lut, beats, 8, 24, 3) == codes).all()
    mult = _config("gemv_mult", group=3, rows=2, wbits=3, k_max=48)
    beats = golden.weight_beats(mult, codes, 3)
    assert len(beats) == golden.ideal_cycles(mult, 8, 24, 3) == 4 * 8
    first = [(beats[0] >> (3 * f)) & 7 for f in range(6)]
    assert first == codes[0, :3].tolist() + codes[1, :3].tolist()


def test_activation_beats_pack_lanes_low_first():
    assert golden.activation_beats([1, -1], 2, 8) == [1 | (0xFF << 8)]


@pytest.mark.parametrize("family,params,field,allowed", [
    ("lutgemv", {"group": 9}, "params.group", "from 2 to 8"),
    ("lutgemv", {"group": 5, "k_max": 250}, "params.group", "needs tables: ram"),
    ("lutgemv", {"tables": "rom"}, "params.tables", "fabric, ram"),
    ("lutgemv", {"tables": "ram", "m_max": 20}, "params.m_max", "multiple of rows"),
    ("lutgemv", {"tables": "ram", "lookups": 2}, "params.lookups", "not built with tables: ram"),
    ("lutgemv", {"tables": "ram", "qgroup": 32}, "params.qgroup", "not built with tables: ram"),
    ("lutgemv", {"tables": "ram", "group": 3, "k_max": 192, "ternary": True, "bits_max": 2},
     "params.ternary", "not built with tables: ram"),
    ("lutgemv", {"tables": "ram", "scale_bits": 4}, "params.scale_bits", "not built with tables: ram"),
    ("lutgemv", {"tables": "ram", "group": 8, "symmetric": False}, "params.symmetric", "one table"),
    ("lutgemv", {"bits_max": 5}, "params.bits_max", "from 1 to 4"),
    ("lutgemv", {"group": 4, "k_max": 30}, "params.k_max", "multiple of group"),
    ("lutgemv", {"symmetric": "yes"}, "params.symmetric", "True, False"),
    ("gemv_mult", {"wbits": 9}, "params.wbits", "from 1 to 8"),
    ("gemv_mult", {"rowz": 2}, "params.rowz", "unknown parameter"),
])
def test_bad_parameters_name_the_field(family, params, field, allowed):
    with pytest.raises(ConfigError, match=allowed) as info:
        _config(family, **params)
    assert info.value.field == field


def test_ternary_table_covers_every_triple_once_up_to_sign():
    decoded = {}
    for t in np.ndindex(3, 3, 3):
        t = tuple(v - 1 for v in t)
        sign, index = golden.ternary_code(t)
        assert 0 <= index < 14
        decoded[t] = tuple(-v if sign else v for v in golden.TERNARY_TRIPLES[index])
    assert all(k == v for k, v in decoded.items()) and len(decoded) == 27
    rng = np.random.default_rng(3)
    codes, x = rng.integers(0, 3, (6, 48)), rng.integers(-128, 128, 48)
    assert (golden.ternary_gemv(codes, x) == golden.reference(codes, 1, x)).all()


def test_ternary_beats_are_five_bits_per_row():
    cfg = _config(group=3, rows=2, bits_max=2, k_max=6, ternary=True)
    beats = golden.weight_beats(cfg, np.array([[2, 1, 0, 0, 0, 0], [0, 1, 2, 1, 1, 1]]), 2)
    sign, index = golden.ternary_code((1, 0, -1))
    assert len(beats) == 2 and beats[0] & 31 == (index | sign << 4)
    assert beats[1] >> 5 == 0  # the zero triple


def test_ternary_needs_group_three():
    with pytest.raises(ConfigError, match="group: 3") as info:
        _config(group=4, bits_max=2, ternary=True)
    assert info.value.field == "params.ternary"


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=4, bits_max=4)),
                                           ("gemv_mult", dict(group=4, wbits=3))])
@pytest.mark.parametrize("scale_bits", [1, 8, 16])
def test_scaled_extremes_fit_the_output_width(family, params, scale_bits):
    cfg = _config(family, rows=2, k_max=64, scale_bits=scale_bits, **params)
    bits = golden.weight_bits_max(cfg)
    top, low, smax = (1 << bits) - 1, np.full(64, -128), (1 << scale_bits) - 1
    codes = np.array([np.zeros(64, int), np.full(64, top)])
    y = golden.model(cfg, codes, 0, low, bits, [smax, smax])  # row 1: top * low * K * smax
    bound = golden.acc_bound(cfg) * smax
    assert sorted(abs(y).tolist())[-1] == bound
    assert -(1 << (golden.out_width(cfg) - 1)) <= -bound and bound < 1 << (golden.out_width(cfg) - 1)
    assert bound >= 1 << (golden.out_width(cfg) - 2)  # and not wider than needed


def test_scales_multiply_each_row_exactly():
    cfg = _config(group=2, rows=2, bits_max=2, k_max=8, scale_bits=4)
    rng = np.random.default_rng(3)
    codes, x, scales = rng.integers(0, 4, (4, 8)), rng.integers(-128, 128, 8), np.array([0, 1, 7, 15])
    assert (golden.model(cfg, codes, 2, x, 2, scales) ==
            golden.reference(codes, 2, x) * scales).all()
    assert golden.out_width(_config(group=2, k_max=8)) == golden.acc_width(_config(group=2, k_max=8))


def test_scale_bits_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match="scale_bits"):
        _config(scale_bits=17)


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=2, bits_max=2)),
                                           ("gemv_mult", dict(group=4, wbits=2))])
def test_batch_model_is_one_gemv_per_vector_and_beats_interleave(family, params):
    cfg = _config(family, rows=2, k_max=16, batch=3, scale_bits=3, **params)
    rng = np.random.default_rng(5)
    codes, xs, scales = rng.integers(0, 4, (4, 16)), rng.integers(-128, 128, (3, 16)), [0, 7, 3, 1]
    y = golden.batch_model(cfg, codes, 1, xs, 2, scales)
    assert y.shape == (4, 3)
    for v in range(3):
        assert (y[:, v] == golden.reference(codes, 1, xs[v]) * scales).all()
    g, width = cfg.group, cfg.group * 8
    beats = golden.batch_activation_beats(xs, g, 8)
    for j, beat in enumerate(beats):
        for v in range(3):
            assert (beat >> (v * width)) & ((1 << width) - 1) == golden.activation_beats(xs[v], g, 8)[j]
    assert cfg.peak_macs_per_cycle == 2 * g * 3


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=4, bits_max=4)),
                                           ("gemv_mult", dict(group=4, wbits=4))])
def test_group_shifts_are_exact_and_widths_hold_the_largest(family, params):
    cfg = _config(family, rows=2, k_max=32, exp_bits=2, **params)
    rng = np.random.default_rng(9)
    codes, x, shifts = rng.integers(0, 16, (2, 32)), rng.integers(-128, 128, 32), rng.integers(0, 4, 8)
    assert (golden.model(cfg, codes, 3, x, 4, shifts=shifts) ==
            golden.reference(codes, 3, x * np.repeat(2 ** shifts, 4))).all()
    low, top = np.full(32, -128), np.full((1, 32), 15)
    y = golden.model(cfg, top, 0, low, 4, shifts=np.full(8, 3))[0]
    assert y == -golden.acc_bound(cfg) and golden.acc_width(cfg) == golden.acc_width(
        _config(family, rows=2, k_max=32, act_bits=8, **params)) + 3
    with pytest.raises(ConfigError, match="exp_bits"):
        _config(family, exp_bits=4, **params)


# --------------------------------------------------------------------------- out-of-range input


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=2, bits_max=2)),
                                           ("gemv_mult", dict(group=2, wbits=2))])
def test_out_of_range_commands_are_clamped_and_long_vectors_truncated(family, params):
    cfg = _config(family, rows=2, k_max=8, **params)
    assert golden.command(cfg, 0, 3) == (1, 1) and golden.command(cfg, 3, 3) == (2, 3)
    assert golden.command(cfg, 1, 2) == (1, 1) and golden.command(cfg, 2, 2) == (2, 2)
    rng = np.random.default_rng(1)
    codes, x = rng.integers(0, 2, (2, 12)), rng.integers(-128, 128, 12)
    # bits 3 on a bits_max 2 point runs at 2 bits; zero 3 on bits 0 (-> 1) runs at zero 1
    assert (golden.model(cfg, codes, 3, x, 3) == golden.reference(codes[:, :8], 3, x[:8])).all()
    assert (golden.model(cfg, codes, 3, x, 0) == golden.reference(codes[:, :8], 1, x[:8])).all()
    assert golden.used_length(cfg, 12) == 8 and golden.used_length(cfg, 6) == 6


def test_the_brief_example_is_now_defined():
    """bits_max 2, bits 3, a two-row pass: the unit runs it at 2 bits."""
    cfg = _config(group=2, rows=2, bits_max=2, k_max=4)
    codes, x = np.array([[3, 0, 1, 2], [0, 3, 2, 1]]), np.array([-4, 2, 5, -1])
    assert golden.model(cfg, codes, 2, x, 3).tolist() == golden.reference(codes, 2, x).tolist()


# --------------------------------------------------------------------------- group scales


def _bitserial_formula(codes, x, qscales, qzeros, G):
    """``Y = sum_s S[r,s] * sum_{k in s} (W[r,k] - Z[r,s]) * A[k]`` (the bit-serial array's)."""
    y = np.zeros(codes.shape[0], dtype=np.int64)
    for s in range(qscales.shape[1]):
        cols = slice(s * G, (s + 1) * G)
        y += qscales[:, s] * ((codes[:, cols] - qzeros[:, s:s + 1]) @ x[cols])
    return y


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=4, bits_max=4, symmetric=True)),
                                           ("lutgemv", dict(group=2, bits_max=3, symmetric=False)),
                                           ("gemv_mult", dict(group=4, wbits=4))])
@pytest.mark.parametrize("G", [32, 64, 128])
def test_group_scales_are_exact_and_the_layer_model_agrees(family, params, G):
    cfg = _config(family, rows=4, k_max=4 * G, qgroup=G, qscale_bits=12, **params)
    bits_max = golden.weight_bits_max(cfg)
    rng = np.random.default_rng(G + bits_max)
    for bits in range(1, bits_max + 1):
        for k in (cfg.group, G, 3 * G + 2 * cfg.group, 4 * G):  # a partial last group too
            n = -(-k // G)
            codes, x = rng.integers(0, 1 << bits, (8, k)), rng.integers(-128, 128, k)
            qs, qz = rng.integers(0, 4096, (8, n)), rng.integers(0, 1 << bits, (8, n))
            want = _bitserial_formula(codes, x, qs, qz, G)
            assert (golden.model(cfg, codes, 0, x, bits, qscales=qs, qzeros=qz) == want).all()
            assert (golden.gemv(cfg, codes, x, bits, qscales=qs, qzeros=qz) == want).all()
            # zero points above the precision are clamped the same way by both models
            high = np.full_like(qz, (1 << bits_max) - 1)
            assert (golden.model(cfg, codes, 0, x, bits, qscales=qs, qzeros=high) ==
                    golden.gemv(cfg, codes, x, bits, qscales=qs, qzeros=high)).all()


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=4, bits_max=4)),
                                           ("gemv_mult", dict(group=4, wbits=4))])
def test_group_scale_widths_hold_the_extremes(family, params):
    cfg = _config(family, rows=2, k_max=4096, qgroup=128, qscale_bits=16, **params)
    smax, k = (1 << 16) - 1, 4096
    low = np.full(k, -128)
    n = k // 128
    y = golden.model(cfg, np.zeros((1, k), int), 0, low, 4, qscales=np.full((1, n), smax),
                     qzeros=np.full((1, n), 15))[0]
    bound = 15 * 128 * k * smax
    assert y == bound == golden.acc_bound(cfg) * smax
    assert bound < 1 << (golden.out_width(cfg) - 1) and bound >= 1 << (golden.out_width(cfg) - 2)
    # the row accumulator is sized from the group, not from K
    assert golden.acc_width(cfg) == golden.acc_width(_config(family, rows=2, k_max=128, **params))


def test_group_weight_order_sweeps_planes_inside_each_group():
    cfg = _config(group=2, rows=1, bits_max=2, k_max=64, qgroup=32)
    codes = np.arange(64).reshape(1, 64) % 4
    beats = golden.weight_beats(cfg, codes, 2)
    per_group = 32 // 2
    plain = golden.weight_beats(_config(group=2, rows=1, bits_max=2, k_max=64), codes, 2)
    # group s, plane 1 then plane 0, then group s+1
    assert beats[:per_group] == plain[:per_group] and beats[per_group:2 * per_group] == plain[32:32 + per_group]
    assert len(beats) == golden.ideal_cycles(cfg, 1, 64, 2)


@pytest.mark.parametrize("family,params,field", [
    ("lutgemv", dict(group=3, bits_max=3, k_max=96, qgroup=32), "params.qgroup"),
    ("lutgemv", dict(group=4, k_max=96, qgroup=64), "params.k_max"),
    ("lutgemv", dict(group=4, k_max=128, qgroup=32, scale_bits=8), "params.scale_bits"),
    ("gemv_mult", dict(group=4, k_max=128, qgroup=32, batch=2), "params.batch"),
    ("gemv_mult", dict(group=4, k_max=128, qgroup=48), "params.qgroup"),
])
def test_bad_group_parameters_name_the_field(family, params, field):
    with pytest.raises(ConfigError) as info:
        _config(family, **params)
    assert info.value.field == field


# --------------------------------------------------------------------------- whole layers


@pytest.mark.parametrize("family,params", [("lutgemv", dict(group=4, bits_max=4)),
                                           ("lutgemv", dict(group=3, bits_max=2, ternary=True)),
                                           ("gemv_mult", dict(group=4, wbits=4, scale_bits=8))])
def test_whole_layer_gemv_equals_the_step_by_step_model(family, params):
    k = 384 if params.get("ternary") else 1536
    cfg = _config(family, rows=8, k_max=k, **params)
    rng = np.random.default_rng(11)
    bits = 2 if params.get("ternary") else 4
    codes = rng.integers(0, 3 if params.get("ternary") else 16, (256, k))
    xs = rng.integers(-128, 128, (3, k))
    scales = rng.integers(0, 256, 256) if cfg.scale_bits else None
    want = np.stack([golden.model(cfg, codes, 5, v, bits, scales) for v in xs], axis=1)
    assert (golden.gemv(cfg, codes, xs, bits, 5, scales) == want).all()


def test_whole_layer_gemv_is_fast_for_an_llm_layer():
    import time
    cfg = _config(group=4, rows=8, bits_max=4, k_max=4096, qgroup=128, qscale_bits=8)
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 16, (4096, 4096)).astype(np.int64)
    x = rng.integers(-128, 128, 4096)
    qs, qz = rng.integers(0, 256, (4096, 32)), rng.integers(0, 16, (4096, 32))
    start = time.perf_counter()
    y = golden.gemv(cfg, codes, x, 4, qscales=qs, qzeros=qz)
    elapsed = time.perf_counter() - start
    assert y.shape == (4096,) and elapsed < 20, f"{elapsed:.1f} s for a 4096 x 4096 layer"
    rows = slice(0, 16)  # spot-check against the step-by-step model
    assert (y[rows] == golden.model(cfg, codes[rows], 0, x, 4, qscales=qs[rows], qzeros=qz[rows])).all()


# --------------------------------------------------------------------------- several lookups per row


@pytest.mark.parametrize("ternary", [False, True])
def test_lookups_pack_a_beat_as_one_wider_group(ternary):
    g, bits = (3, 2) if ternary else (2, 3)
    cfg = _config(group=g, rows=2, bits_max=bits, k_max=48, lookups=4, ternary=ternary)
    assert golden.span(cfg) == 4 * g and cfg.peak_macs_per_cycle == 2 * 4 * g
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 3 if ternary else 8, (4, 48))
    beats = golden.weight_beats(cfg, codes, bits)
    assert len(beats) == golden.ideal_cycles(cfg, 4, 48, bits) == 2 * (1 if ternary else bits) * 48 // (4 * g)
    if ternary:  # field r * 4 + j: the beat's triple j of row r
        sign, index = golden.ternary_code(codes[1, 3:6] - 1)
        assert (beats[0] >> (5 * (1 * 4 + 1))) & 31 == index | sign << 4
    else:
        first = [(beats[0] >> (r * 8 + l)) & 1 for r in range(2) for l in range(8)]
        assert first == [(codes[r, l] >> (bits - 1)) & 1 for r in range(2) for l in range(8)]


def test_lookups_need_k_max_a_multiple_of_the_span():
    with pytest.raises(ConfigError, match="lookups") as info:
        _config(group=2, bits_max=2, k_max=12, lookups=4)
    assert info.value.field == "params.k_max"


def test_ram_weight_order_round_trips_and_frames_every_sweep():
    """``tables: ram``: group outer, plane, local row; ``last`` on each sweep's final beat."""
    rng = np.random.default_rng(11)
    cfg = _config(tables="ram", group=4, rows=3, bits_max=3, k_max=16, m_max=9)
    m, k, bits = 6, 12, 3
    codes = rng.integers(0, 1 << bits, (m, k))
    beats = golden.weight_beats(cfg, codes, bits)
    lasts = golden.weight_lasts(cfg, m, k, bits)
    assert len(beats) == len(lasts) == golden.ideal_cycles(cfg, m, k, bits) == (k // 4) * bits * (m // 3)
    back = np.zeros_like(codes)
    it = iter(beats)
    for j in range(k // 4):
        for i in range(bits - 1, -1, -1):
            for r in range(m // 3):
                beat = next(it)
                for p in range(3):
                    for lane in range(4):
                        back[r * 3 + p, j * 4 + lane] |= ((beat >> (p * 4 + lane)) & 1) << i
    assert (back == codes).all()
    assert lasts == [0, 1] * ((k // 4) * bits)
    fabric = _config(group=4, rows=3, bits_max=3, k_max=16)
    assert golden.weight_lasts(fabric, m, k, bits) == [0] * (len(beats) - 1) + [1]
