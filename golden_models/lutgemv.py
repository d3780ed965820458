"""Bit-exact models of the GEMV units (LUT-based and multiplier baseline) and their packing.

Both units compute, for a matrix of unsigned weight codes ``Q`` (M x K, each code in
``[0, 2**bits)``), a run-time zero point ``z`` and an activation vector ``x`` (K signed
``act_bits``-bit integers)::

    y = (Q - z) @ x                       (exact integers; no rounding, no saturation)

Signed ``bits``-bit weights ``w`` are the codes ``q = w + 2**(bits-1)`` with
``z = 2**(bits-1)``; asymmetric quantisation uses any other ``z``.

LUT-GEMV arithmetic (T-MAC's ±1 bit-plane encoding), as the RTL does it
-----------------------------------------------------------------------
Bit-plane ``i`` of the codes is remapped to signs ``s_i = 2*b_i - 1``, so
``q = sum_i 2**(i-1) * s_i + (2**bits - 1) / 2``. For each group ``j`` of ``g`` activations the
table is ``T_j[idx] = sum_l (bit_l(idx) ? +a_l : -a_l)`` (bit ``l`` of the index selects the
sign of activation ``l`` of the group). Then, in units of one half::

    acc  = sum_i sum_j T_j[idx_ij] << i            (idx_ij: the g bits of plane i, group j)
    acc2 = acc + (2**bits - 1 - 2*z) * sum(x)      (offset: the ±1 encoding plus the zero point)
    y    = acc2 >> 1                               (acc2 is always even: exact)

Per-row output scales (``scale_bits > 0``, both units)
------------------------------------------------------
One unsigned ``scale_bits``-bit integer ``s_r`` per output row per vector (the ``scale``
stream, row order); the unit emits ``y_r * s_r`` exactly, in :func:`out_width` bits (the
product width is derived from the accumulator bound: no rounding, no saturation).

Per-group scales and zero points along K (``qgroup`` G > 0, both units; GPTQ / RTN layers)
------------------------------------------------------------------------------------------
K is cut into quantisation groups of G columns (32, 64 or 128; a multiple of ``g``); row
``r`` has in group ``s`` an unsigned ``qscale_bits``-bit scale ``S[r, s]`` and a zero point
``Z[r, s]`` (``< 2**bits``, clamped like the command's), as the bit-serial array's
``Y = sum_s S[r,s] * sum_{k in s} (W[r,k] - Z[r,s]) * A[k]`` (``golden_models.bitserial``)::

    y[r] = sum_s S[r, s] * ((Q[r, s*G:(s+1)*G] - Z[r, s]) @ x[s*G:(s+1)*G])

exact in :func:`out_width` bits (bound ``acc_bound * (2**qscale_bits - 1)``); the ``cmd``
zero point is ignored. Step for step (:func:`grouped_model`): per group, LUT-GEMV makes
``acc_s`` from the tables (its planes swept inside the group: weight order tile, group ``s``,
plane, table group ``j``), then ``v = (acc_s + (2**bits - 1 - 2 Z) * sum(x_s)) >> 1``; the
baseline makes ``acc_s = Q_s @ x_s`` (codes, no zero point) and ``v = acc_s - Z * sum(x_s)``;
both add ``S * v`` into the row's total. Row accumulators are ``acc_s`` only (width from G,
not from K: :func:`acc_width`). The scales and zero points come on the ``q`` stream, one beat
per row per group in the order tile, group, row. :func:`gemv` is the same function for a
whole layer, vectorised (no tables).

Symmetrisation stores only the half ``T_j[idx]`` with bit ``g-1`` of ``idx`` set and uses
``T_j[idx] = -T_j[~idx]`` for the rest: the RTL selects ``half[(idx ^ ~mask)]`` and negates.

Ternary-native tables (``ternary: true``, BitNet b1.58 style; g = 3)
-------------------------------------------------------------------
Weights ``t = q - 1`` in {-1, 0, +1} (codes 0, 1, 2 with zero point 1). Three weights are one
lookup: of the 27 triples, ``t`` and ``-t`` give opposite sums, so a 14-entry table holds the
zero triple and the 13 triples whose most significant non-zero weight (lane 2, then 1, then
0) is +1 (:data:`TERNARY_TRIPLES`); a triple is sent as a sign bit and a 4-bit index
(:func:`ternary_code`), 5 bits for 3 weights (1.67 bits per weight), and
``y = sum_j (sign ? -T_j[index] : T_j[index])`` directly (no planes, no offset).

Stream packing (the unit's weight-stream beats)
-----------------------------------------------
* LUT-GEMV: one beat = ``rows * g`` bits: bit ``r*g + l`` is plane ``i`` of code
  ``Q[t*rows + r, j*g + l]``. Order: for each row tile ``t``, for each plane ``i`` from
  ``bits-1`` down to 0, for each group ``j``. ``last`` on the pass's final beat.
* Ternary LUT-GEMV: one beat = ``rows`` fields of 5 bits (index in bits 0..3, sign in bit 4)
  for group ``j`` of the tile's rows. Order: tile, then group.
* Multiplier baseline: one beat = ``rows * g`` codes of ``wbits`` bits: field ``r*g + l`` is
  ``Q[t*rows + r, j*g + l]``. Order: tile, then group. ``last`` on the final beat.
* Activations: one beat = one group of ``g`` lanes (lane ``l`` in the low bits first); with
  ``batch`` B, the same group of each of the B vectors (lane ``v*g + l``).
* ``lookups`` L > 1 (LUT-GEMV): a beat covers ``span = L * g`` columns, packed exactly as a
  group of ``span`` would be (activation lanes ``0..span-1``; weight bit ``r*span + l``; ternary
  field ``r*L + j`` for the beat's triple ``j``); each row looks up its L tables in one cycle
  and an adder tree sums them before the accumulator (same numbers: :func:`lut_acc`).
  Group shifts (``exp_bits``) are then one per beat (``span`` lanes).

Block-exponent shifts (``exp_bits > 0``, both units)
----------------------------------------------------
Each activation beat (one group) carries an unsigned ``shift < 2**exp_bits``; the unit uses
``x << shift`` for that group (exact: lanes are ``act_bits + 2**exp_bits - 1`` bits wide and
every width above is derived from :func:`act_bound`). This is how activations aligned to
per-group block exponents inside a window enter the integer unit
(``golden_models.blockfloat.align_window``); the common exponent is applied outside.

Batched GEMV (``batch`` B > 1, both units): B vectors share every weight beat; each is
computed exactly as alone (:func:`batch_model`), B results per row.

Out-of-range commands and vectors (both units, one behaviour: clamped, :func:`command`)
---------------------------------------------------------------------------------------
The hardware never refuses a command; it clamps, and :func:`model` clamps the same way:

* run-time precision ``bits`` outside ``1..bits_max`` (0, or above ``bits_max``) is used as
  ``min(max(bits, 1), bits_max)``; the weight pass must then carry that many planes (LUT-GEMV)
  and codes below ``2**bits`` of the clamped precision;
* zero point ``z >= 2**bits`` (of the clamped precision) is used as ``2**bits - 1``;
* a vector longer than ``k_max`` is truncated: its groups past ``k_max / g`` are consumed from
  ``x`` and dropped (not stored, not summed), and the pass covers the first ``k_max`` columns
  (its weight pass is that of a ``k_max``-column matrix; group shifts past it are dropped too).

Ternary units ignore ``bits`` and ``z`` (always codes 0..2 with zero point 1); the length
rule applies to them as well.
"""
from __future__ import annotations

import numpy as np

from . import lutgemv_ram
from .lutgemv_widths import (  # noqa: F401  (the model's widths; callers use them as lutgemv.<name>)
    lookups, span, exp_bits, max_shift, lane_width,
    act_bound, entry_width, weight_bits_max, qgroup, qscale_bits,
    acc_bound, partial_bound, acc_width, qsum_width, scale_bits,
    batch, out_width, sum_width)


# --------------------------------------------------------------------------- commands


def command(cfg, bits: int, zero: int) -> tuple[int, int]:
    """The ``(bits, zero)`` the hardware uses for a ``cmd`` beat: ``bits`` clamped into
    ``1..bits_max``, then ``zero`` clamped into ``0..2**bits - 1`` (ternary: ``(2, 1)``)."""
    if cfg.ternary:
        return 2, 1
    bits = min(max(int(bits), 1), weight_bits_max(cfg))
    return bits, min(max(int(zero), 0), (1 << bits) - 1)


def used_length(cfg, k: int) -> int:
    """Columns a vector of ``k`` activations contributes: at most ``k_max`` (the rest dropped)."""
    return min(int(k), cfg.k_max)


def operands(cfg, codes, zero: int, x, bits: int, shifts=None):
    """``(codes, zero, x, bits, shifts)`` as the hardware uses them (:func:`command`,
    :func:`used_length`): what the host's weight pass must encode. ``codes`` may have
    ``len(x)`` or ``used_length`` columns; ``x`` is one vector (K,) or B vectors (B, K);
    ``shifts`` (K/g,) or (B, K/g)."""
    bits, zero = command(cfg, bits, zero)
    x = np.asarray(x, dtype=np.int64)
    k = used_length(cfg, x.shape[-1])
    codes = np.asarray(codes, dtype=np.int64)[:, :k]
    if shifts is not None:
        shifts = np.asarray(shifts, dtype=np.int64)[..., :k // span(cfg)]
    return codes, zero, x[..., :k], bits, shifts


# --------------------------------------------------------------------------- models


def reference(codes, zero: int, x) -> np.ndarray:
    """``(Q - z) @ x`` in exact integers (the float reference is the same number)."""
    codes = np.asarray(codes, dtype=np.int64)
    return (codes - int(zero)) @ np.asarray(x, dtype=np.int64)


def tables(x, g: int) -> np.ndarray:
    """Full tables, shape (K/g, 2**g): ``T[j, idx] = sum_l (bit_l(idx) ? +1 : -1) * x[j*g+l]``."""
    groups = np.asarray(x, dtype=np.int64).reshape(-1, g)
    idx = np.arange(1 << g)
    signs = np.where((idx[:, None] >> np.arange(g)[None, :]) & 1, 1, -1)  # (2**g, g)
    return groups @ signs.T


def half_tables(x, g: int) -> np.ndarray:
    """Symmetrised tables, shape (K/g, 2**(g-1)): entry ``e`` is ``T[e | 2**(g-1)]``."""
    return tables(x, g)[:, 1 << (g - 1):]


def lookup(x, idx, g: int, symmetric: bool) -> np.ndarray:
    """``T_j[idx_rj]`` for indices ``idx`` of shape (rows, K/g), by the chosen table form."""
    groups = np.arange(idx.shape[1])[None, :]
    if not symmetric:
        return tables(x, g)[groups, idx]
    top = (idx >> (g - 1)) & 1
    mask = (1 << (g - 1)) - 1
    sub = np.where(top == 1, idx & mask, ~idx & mask)
    value = half_tables(x, g)[groups, sub]
    return np.where(top == 1, value, -value)


def lut_acc(codes, x, bits: int, g: int, symmetric: bool = True) -> np.ndarray:
    """``acc = sum_i sum_j T_j[idx_ij] << i`` per row (the table sums, before the offset)."""
    codes = np.asarray(codes, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    rows, k = codes.shape
    assert k % g == 0 and codes.min() >= 0 and codes.max() < (1 << bits)
    lanes = 1 << np.arange(g)
    acc = np.zeros(rows, dtype=np.int64)
    for i in range(bits - 1, -1, -1):
        plane = ((codes >> i) & 1).reshape(rows, k // g, g)
        idx = (plane * lanes).sum(axis=2)
        acc += lookup(x, idx, g, symmetric).sum(axis=1) << i
    return acc


def lut_gemv(codes, zero, x, bits: int, g: int, symmetric: bool = True) -> np.ndarray:
    """T-MAC's bit-plane table-lookup GEMV, step for step as the RTL (see module docstring);
    ``zero``: one zero point, or one per row."""
    zero = np.asarray(zero, dtype=np.int64)
    assert 0 <= zero.min() and zero.max() < (1 << bits)
    acc = lut_acc(codes, x, bits, g, symmetric)
    acc2 = acc + ((1 << bits) - 1 - 2 * zero) * int(np.asarray(x, dtype=np.int64).sum())
    assert not (acc2 & 1).any(), "acc2 must be even"
    return acc2 >> 1


def clamp_zeros(cfg, zeros, bits: int) -> np.ndarray:
    """Group zero points as the hardware uses them: into ``0..2**bits - 1`` (``bits`` clamped)."""
    bits, _ = command(cfg, bits, 0)
    return np.clip(np.asarray(zeros, dtype=np.int64), 0, (1 << bits) - 1)


def grouped_model(cfg, codes, x, bits: int, qscales, qzeros) -> np.ndarray:
    """Per-group scales and zero points, group by group as the RTL does (module docstring):
    ``qscales``, ``qzeros`` of shape (M, ceil(K / qgroup)); bits, zeros clamped, K truncated."""
    codes, _, x, bits, _ = operands(cfg, codes, 0, x, bits)
    G, (m, k) = qgroup(cfg), codes.shape
    qscales, qzeros = np.asarray(qscales, dtype=np.int64), clamp_zeros(cfg, qzeros, bits)
    n = -(-k // G)
    qscales, qzeros = qscales[:, :n], qzeros[:, :n]
    assert qscales.shape == qzeros.shape == (m, n), (qscales.shape, (m, k, G))
    assert qscales.min() >= 0 and qscales.max() < (1 << qscale_bits(cfg))
    total = np.zeros(m, dtype=np.int64)
    for s in range(n):
        cols = slice(s * G, (s + 1) * G)
        q_s, x_s, z = codes[:, cols], x[cols], qzeros[:, s]
        if cfg.family == "lutgemv":
            acc = lut_acc(q_s, x_s, bits, cfg.group, cfg.symmetric)
            acc2 = acc + ((1 << bits) - 1 - 2 * z) * int(x_s.sum())
            assert not (acc2 & 1).any()
            value = acc2 >> 1
        else:
            value = q_s @ x_s - z * int(x_s.sum())
        assert np.abs(value).max(initial=0) <= partial_bound(cfg)
        total += qscales[:, s] * value
    return total


def gemv(cfg, codes, x, bits: int, zero: int = 0, scales=None, shifts=None,
         qscales=None, qzeros=None) -> np.ndarray:
    """The unit's function for a whole layer, vectorised (one integer matrix product, no
    tables): the same numbers as :func:`model` / :func:`batch_model` (a test compares them).
    ``codes`` (M, K); ``x`` (K,) or (B, K) (result (M,) or (M, B)); ``qscales``/``qzeros``
    (M, ceil(K/qgroup)) for a point with ``qgroup``."""
    codes, zero, x, bits, shifts = operands(cfg, codes, zero, x, bits, shifts)
    xs = np.atleast_2d(x)
    if shifts is not None:
        xs = xs << np.repeat(np.atleast_2d(shifts), span(cfg), axis=-1)
    if qgroup(cfg):
        G, (m, k) = qgroup(cfg), codes.shape
        n = -(-k // G)
        pad = n * G - k
        q = np.pad(codes, ((0, 0), (0, pad))).reshape(m, n, G)
        a = np.pad(xs, ((0, 0), (0, pad))).reshape(len(xs), n, G)
        z = clamp_zeros(cfg, qzeros, bits)[:, :n]
        part = np.einsum("msk,bsk->mbs", q, a) - z[:, None, :] * a.sum(axis=2)[None, :, :]
        y = np.einsum("ms,mbs->mb", np.asarray(qscales, dtype=np.int64)[:, :n], part)
    else:
        y = (codes - zero) @ xs.T
        if scale_bits(cfg):
            y = y * np.asarray(scales, dtype=np.int64)[:, None]
    return y[:, 0] if np.ndim(x) == 1 else y


TERNARY_TRIPLES = ((0, 0, 0),) + tuple(
    t for t in ((t0, t1, t2) for t2 in (0, 1) for t1 in (-1, 0, 1) for t0 in (-1, 0, 1))
    if t != (0, 0, 0) and next(v for v in t[::-1] if v) == 1)
assert len(TERNARY_TRIPLES) == 14


def ternary_code(triple) -> tuple[int, int]:
    """(sign, index) of a weight triple (lane 0 first): ``triple = (-1)**sign * TRIPLES[index]``."""
    triple = tuple(int(v) for v in triple)
    if triple in TERNARY_TRIPLES:
        return 0, TERNARY_TRIPLES.index(triple)
    return 1, TERNARY_TRIPLES.index(tuple(-v for v in triple))


def ternary_gemv(codes, x) -> np.ndarray:
    """Ternary-native table lookup (see module docstring); codes 0, 1, 2 mean -1, 0, +1."""
    weights = np.asarray(codes, dtype=np.int64) - 1
    groups = np.asarray(x, dtype=np.int64).reshape(-1, 3)
    table = groups @ np.array(TERNARY_TRIPLES).T  # (K/3, 14)
    y = np.zeros(weights.shape[0], dtype=np.int64)
    for r, row in enumerate(weights):
        for j, triple in enumerate(row.reshape(-1, 3)):
            sign, index = ternary_code(triple)
            y[r] += -table[j, index] if sign else table[j, index]
    return y


def apply_scales(y, scales) -> np.ndarray:
    """Per-row output scales: ``y[r] * s[r]`` for unsigned integer ``s`` (exact; the output
    width :func:`out_width` holds every product, so nothing is rounded or saturated)."""
    scales = np.asarray(scales, dtype=np.int64)
    assert scales.min() >= 0
    return np.asarray(y, dtype=np.int64) * scales


def shifted(x, shifts, g: int) -> np.ndarray:
    """Activations with their group's left shift applied (exact): ``x[j*g+l] << shifts[j]``."""
    return np.asarray(x, dtype=np.int64) << np.repeat(np.asarray(shifts, dtype=np.int64), g)


def model(cfg, codes, zero: int, x, bits: int, scales=None, shifts=None,
          qscales=None, qzeros=None) -> np.ndarray:
    """Bit-exact outputs of a ``lutgemv`` or ``gemv_mult`` design point (duck-typed config);
    ``scales`` (one unsigned integer per row) when the point has ``scale_bits``; ``shifts``
    (one per group, ``< 2**exp_bits``) when it has ``exp_bits``. Out-of-range ``bits``,
    ``zero`` and vector lengths are clamped as the hardware does (:func:`operands`)."""
    if qgroup(cfg):
        return grouped_model(cfg, codes, x, bits, qscales, qzeros)
    codes, zero, x, bits, shifts = operands(cfg, codes, zero, x, bits, shifts)
    if exp_bits(cfg):
        assert shifts is not None and len(shifts) * span(cfg) == len(x)
        assert 0 <= np.min(shifts) and np.max(shifts) <= max_shift(cfg)
        x = shifted(x, shifts, span(cfg))
    if cfg.ternary:
        assert np.asarray(codes).max() <= 2
        y = ternary_gemv(codes, x)
    elif cfg.family == "lutgemv":
        y = lut_gemv(codes, zero, x, bits, cfg.group, cfg.symmetric)
    else:
        y = reference(codes, zero, x)
    if scale_bits(cfg):
        assert scales is not None and len(scales) == len(y)
        assert np.asarray(scales).max() < (1 << scale_bits(cfg))
        y = apply_scales(y, scales)
    return y


def batch_model(cfg, codes, zero: int, xs, bits: int, scales=None, shifts=None,
                qscales=None, qzeros=None) -> np.ndarray:
    """Batched GEMV (``batch`` B): vectors ``xs`` (B x K) share the weights; shape (M, B).
    The unit looks B tables up with the same index, so each column is :func:`model` exactly.
    ``shifts``: (B, K/g) when the point has ``exp_bits``."""
    shifts = [None] * len(xs) if shifts is None else shifts
    return np.stack([model(cfg, codes, zero, x, bits, scales, sh, qscales, qzeros)
                     for x, sh in zip(np.asarray(xs), shifts)], axis=1)


def group_beats(cfg, qscales, qzeros, rows_per_tile: int) -> list[tuple[int, int]]:
    """``(scale, zero)`` of each ``q`` beat: order tile, quantisation group, row."""
    qscales, qzeros = np.asarray(qscales), np.asarray(qzeros)
    m, n = qscales.shape
    return [(int(qscales[t + r, s]), int(qzeros[t + r, s]))
            for t in range(0, m, rows_per_tile) for s in range(n) for r in range(rows_per_tile)]


# --------------------------------------------------------------------------- packing


def activation_beats(x, g: int, act_bits: int) -> list[int]:
    """Raw payload ``data`` of each activation beat (lane ``l`` at bits ``l*act_bits``)."""
    mask = (1 << act_bits) - 1
    beats = []
    for group in np.asarray(x, dtype=np.int64).reshape(-1, g).tolist():
        beats.append(sum((a & mask) << (l * act_bits) for l, a in enumerate(group)))
    return beats


def batch_activation_beats(xs, g: int, act_bits: int) -> list[int]:
    """Beats of B vectors travelling together: lane ``v*g + l`` holds ``xs[v, j*g + l]``."""
    width = g * act_bits
    per_vector = [activation_beats(x, g, act_bits) for x in np.asarray(xs)]
    return [sum(beat << (v * width) for v, beat in enumerate(beats)) for beats in zip(*per_vector)]


def weight_beats(cfg, codes, bits: int) -> list[int]:
    """Raw weight-stream ``data`` of one pass over ``codes`` (M x K, M a multiple of rows);
    ``tables: ram``: ``golden_models.lutgemv_ram`` (group outer)."""
    if lutgemv_ram.in_ram(cfg):
        return lutgemv_ram.weight_beats(cfg, codes, bits)
    codes = np.asarray(codes, dtype=np.int64)
    m, k = codes.shape
    g, rows = span(cfg), cfg.rows  # a beat covers span columns (lookups groups of g)
    assert m % rows == 0 and k % g == 0
    beats = []
    for t in range(m // rows):
        tile = codes[t * rows:(t + 1) * rows].reshape(rows, k // g, g)
        if cfg.ternary:  # field r * lookups + j: triple j of the beat's columns, row r
            for word in tile.transpose(1, 0, 2).tolist():
                fields = [ternary_code(np.array(row[3 * j:3 * j + 3]) - 1)
                          for row in word for j in range(len(row) // 3)]
                beats.append(sum((idx | sign << 4) << (5 * f) for f, (sign, idx) in enumerate(fields)))
        elif cfg.family == "lutgemv":
            weights = (1 << np.arange(rows * g, dtype=object))
            step = (qgroup(cfg) or k) // g  # table groups per quantisation group
            for j0 in range(0, k // g, step):  # planes swept inside each quantisation group
                for i in range(bits - 1, -1, -1):
                    plane = ((tile[:, j0:j0 + step] >> i) & 1).transpose(1, 0, 2).reshape(-1, rows * g)
                    beats += [int((p.astype(object) * weights).sum()) for p in plane]
        else:
            shifts = [(r * g + l) * cfg.wbits for r in range(rows) for l in range(g)]
            for group in tile.transpose(1, 0, 2).reshape(k // g, rows * g).tolist():
                beats.append(sum(q << s for q, s in zip(group, shifts)))
    return beats


def weight_lasts(cfg, m: int, k: int, bits: int) -> list[int]:
    """``last`` of each beat of :func:`weight_beats`: the pass's final beat (``tables: ram``:
    every row sweep's final beat, ``golden_models.lutgemv_ram``)."""
    if lutgemv_ram.in_ram(cfg):
        return lutgemv_ram.weight_lasts(cfg, m, k, bits)
    n = ideal_cycles(cfg, m, k, bits)
    return [0] * (n - 1) + [1]


def ideal_cycles(cfg, m: int, k: int, bits: int) -> int:
    """Weight beats of one pass: the cycle count of a unit that never stalls (the same
    count in both orders: ``M/rows * planes * K/span``)."""
    planes = bits if cfg.family == "lutgemv" and not cfg.ternary else 1
    return (m // cfg.rows) * planes * (k // span(cfg))
