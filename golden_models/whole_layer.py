"""Whole-layer (vectorised) versions of the golden models, bit-exact to the per-tile /
per-row / per-element models they are tested against (``tests/test_evaluate.py``).

* :func:`bitserial_gemm` — the bit-serial MAC array (:mod:`golden_models.bitserial`) over a
  whole weight matrix and any number of activation columns. The array computes tiles of
  ``cfg.rows`` rows by ``cfg.cols`` columns; a whole layer is the same exact integer sum
  ``Y[r, c] = sum_g S[r, g] * sum_{k in g} (W[r, k] - Z[r, g]) * A[k, c]`` for every row and
  column, so the tiling does not change a single bit (there is no rounding anywhere in the
  array). Products and sums are integers far below 2**53, so they are computed with float64
  BLAS matmuls, which are then exact; the bound is checked (:func:`gemm_bound`) and an int64
  einsum is used past it.
* :func:`softmax_rows` — the softmax unit over a batch of rows of one length, both max
  modes: the buffer mode fully vectorised; the online mode runs its element-by-element
  recurrence (two floor-shifted partial sums) over the elements of a row, vectorised over
  all rows at once, so it is the hardware's arithmetic step for step.
* :func:`ibert_gelu` — I-BERT's i-GELU in int64 where the product ``q * M_int`` provably fits
  (every format up to Q4.11-ish widths), else the exact object-integer path of
  :func:`golden_models.activation.ibert_model`.
* :func:`activation` — dispatch: ``poly`` and ``table`` are already vectorised in
  :mod:`golden_models.activation`; ``ibert`` goes through :func:`ibert_gelu`.
"""
from __future__ import annotations

import numpy as np

from . import activation as act_model
from . import softmax as sm
from .bitserial import check_tile, plan, value_range
from .fixedpoint import saturate, shift_round_half_even

#: the largest integer magnitude float64 holds exactly
FLOAT_EXACT = 1 << 53


# --------------------------------------------------------------------------- bit-serial


def gemm_bound(cfg, k: int) -> int:
    """The largest |partial sum| a ``k``-column gemm on ``cfg`` can reach."""
    p = plan(cfg)
    smax = (1 << cfg.scale_bits) - 1 if cfg.scale_bits else 1
    return (k // cfg.group_size) * smax * p.group_bound


def check_operands(cfg, weights, acts, scales, zeros, wbits: int, wsigned: bool) -> None:
    """Refuse operands the array would refuse (``bitserial.check_tile`` on the first tile
    shape, with every row and column checked for range): ValueError, one line."""
    rows, k = weights.shape
    if acts.shape[0] != k:
        raise ValueError(f"weights have K = {k} but activations {acts.shape[0]} rows")
    from .bitserial import Tile
    # check_tile wants cfg.rows x cfg.cols; check value ranges on the whole arrays instead.
    probe_rows, probe_cols = min(rows, cfg.rows), min(acts.shape[1], cfg.cols)
    if probe_rows == cfg.rows and probe_cols == cfg.cols:
        check_tile(cfg, Tile(weights[:cfg.rows], acts[:, :cfg.cols], scales[:cfg.rows],
                             zeros[:cfg.rows], wbits, wsigned, cfg.abits))
    lo, hi = value_range(wbits, wsigned)
    alo, ahi = value_range(cfg.abits, cfg.asigned)
    slo, shi = (0, (1 << cfg.scale_bits) - 1) if cfg.scale_bits else (1, 1)
    zlo, zhi = (lo, hi) if cfg.zero_point else (0, 0)
    for name, v, a, b in (("weights", weights, lo, hi), ("acts", acts, alo, ahi),
                          ("scales", scales, slo, shi), ("zeros", zeros, zlo, zhi)):
        if v.size and (v.min() < a or v.max() > b):
            raise ValueError(f"{name} outside {a}..{b}")
    if k % cfg.group_size or k > cfg.k_max:
        raise ValueError(f"K = {k} must be a multiple of {cfg.group_size} up to {cfg.k_max}")


def bitserial_gemm(cfg, weights, acts, scales, zeros, wbits: int, wsigned: bool,
                   check: bool = True) -> np.ndarray:
    """``Y`` (R, C) int64 of a whole layer on the bit-serial array ``cfg``.

    weights (R, K) and zeros (R, K/G) in the run-time weight format, acts (K, C) in the
    activation format, scales (R, K/G) unsigned ``scale_bits``-bit (all 1 without scales).
    Equal to tiling the matrix into ``cfg.rows x cfg.cols`` tiles and running
    ``bitserial.horner_model`` on each (tested).
    """
    weights = np.asarray(weights, dtype=np.int64)
    acts = np.asarray(acts, dtype=np.int64)
    scales = np.asarray(scales, dtype=np.int64)
    zeros = np.asarray(zeros, dtype=np.int64)
    if check:
        check_operands(cfg, weights, acts, scales, zeros, wbits, wsigned)
    g = cfg.group_size
    rows, k = weights.shape
    groups = k // g
    w = (weights.reshape(rows, groups, g) - zeros[:, :, None]).transpose(1, 0, 2)  # (n, R, G)
    a = acts.reshape(groups, g, -1)                                                # (n, G, C)
    if gemm_bound(cfg, k) < FLOAT_EXACT:
        group_values = np.matmul(w.astype(np.float64), a.astype(np.float64))       # exact
        total = np.einsum("rn,nrc->rc", scales.astype(np.float64), group_values)
        return np.rint(total).astype(np.int64)
    group_values = np.einsum("nrk,nkc->nrc", w, a)
    return np.einsum("rn,nrc->rc", scales, group_values)


# --------------------------------------------------------------------------- softmax


def _scale_rows(c: sm.SoftmaxConstants, e: np.ndarray, r: np.ndarray) -> np.ndarray:
    e_s = shift_round_half_even(e, c.ef - c.es)
    return saturate(shift_round_half_even(e_s * r[..., None], c.es + c.q), c.output)


def _reciprocals(c: sm.SoftmaxConstants, total: np.ndarray) -> np.ndarray:
    divisor = total >> c.divisor_shift
    safe = np.where(divisor == 0, 1, divisor)
    return np.where(divisor == 0, (1 << c.qb) - 1, (1 << c.numerator_log2) // safe)


def softmax_rows(c: sm.SoftmaxConstants, x) -> np.ndarray:
    """Output codes of every row of ``x`` (shape (..., n), input codes, no mask, ``n`` at
    most ``n_max``): equal to ``softmax.row_model`` row by row (tested)."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[-1]
    if n > c.n_max:
        raise ValueError(f"rows of {n} elements exceed the unit's n_max = {c.n_max}")
    if (1 << c.numerator_log2) >= FLOAT_EXACT * 512:
        raise ValueError("reciprocal numerator too wide for int64")
    flat = x.reshape(-1, n)
    if not c.online:
        m = flat.max(axis=1, keepdims=True)
        e = sm.exponentials(c, m - flat)
        out = _scale_rows(c, e, _reciprocals(c, e.sum(axis=1)))
        return out.reshape(x.shape)
    # online: the recurrence of softmax.online_pass, one element (column) at a time
    t = (flat * c.log2e) >> c.input.frac_bits                     # floor
    top = -((-t) >> c.rf)                                          # ceil(t / 2**rf)
    running = np.full(flat.shape[0], sm.online_tag_range(c)[0], dtype=np.int64)
    acc = np.zeros((2, flat.shape[0]), dtype=np.int64)
    es = np.zeros_like(flat)
    tags = np.zeros_like(flat)
    for i in range(n):
        running = np.maximum(running, top[:, i])
        es[:, i] = sm.exp2_neg(c, (running << c.rf) - t[:, i])
        rescaled = 0 if i < 2 else acc[i % 2] >> (running - tags[:, i - 2])
        acc[i % 2] = rescaled + es[:, i]
        tags[:, i] = running
    total = acc[(n - 1) % 2] + (acc[n % 2] >> (running - tags[:, n - 2]) if n > 1 else 0)
    e_final = es >> (running[:, None] - tags)
    return _scale_rows(c, e_final, _reciprocals(c, total)).reshape(x.shape)


# --------------------------------------------------------------------------- activation


def ibert_gelu(consts: act_model.IbertConstants, x) -> np.ndarray:
    """``activation.ibert_model`` vectorised in int64 when ``|q| * M_int < 2**62``."""
    x = np.asarray(x, dtype=np.int64)
    clipped = np.minimum(np.abs(x), -consts.b_int) + consts.b_int
    y = np.sign(x) * (clipped * clipped + consts.c_int)
    y = y >> consts.erf_shift
    q = x * (y + consts.one_int)
    qmax = int(np.abs(q).max()) if q.size else 0
    if qmax * abs(consts.m_int) >= 1 << 62:
        return act_model.ibert_model(consts, x)
    return saturate(shift_round_half_even(q * consts.m_int, consts.m_shift), consts.out_fmt)


def activation(cfg, x) -> np.ndarray:
    """Output codes of an activation design point for input codes ``x`` (any shape)."""
    x = np.asarray(x, dtype=np.int64)
    if cfg.method == "ibert":
        return ibert_gelu(act_model.ibert_constants(cfg.input, cfg.output), x)
    if cfg.method == "table":
        return act_model.table_model(cfg.function, cfg.input, cfg.output, x)
    return act_model.model(cfg, x)
