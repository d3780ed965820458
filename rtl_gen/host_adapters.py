"""Host adapters of the multi-stream families: random vectors as raw stream beats + golden results.

Contract
--------
Each function here is a family's ``host_vectors(rng, count)`` (its config class delegates
to it): ``rng`` is a ``random.Random`` (the seed the caller prints replays the stimulus),
``count`` the number of output beats wanted (at least; corners come on top). It returns
``[(inputs, outputs)]``, one entry per self-contained vector: ``inputs`` maps each input
stream to its beats, ``outputs`` each output stream to the beats the golden model expects.
A vector is self-contained: once every input beat of it is taken, the block produces every
output beat of it, so the host link may send one or more whole vectors per ``RUN``.

A beat is the stream's flat payload as an unsigned integer (first field in the low bits, as
Amaranth flattens a struct); a stream with a ``last`` field has it set on the vector's final
beat (and only there), so a vector is one AXI4-Stream frame per stream. The layouts are written out here from the family's documented
interface (not read from the generator), so a layout slip on either side fails the board
bench against the golden model.

Vectors are kept small (a few groups of K, one or two row tiles) so that one fits a board's
host-link buffer (:mod:`fpga.bridge`: 4 kB on the iCEBreaker); the unit benches cover
``k_max``. The largest vector an adapter can make is always among its vectors (at the
widest precision), whatever the seed, so a fit check on any seed is a fit check on all.
"""
from __future__ import annotations

import numpy as np

from lowbit.golden_models import bitserial as bs
from lowbit.golden_models import lutgemv as gemv
from lowbit.golden_models import softmax as sm

__all__ = ["bitserial_vectors", "flat", "gemv_vectors", "softmax_vectors"]


def flat(values, width: int) -> int:
    """``values`` (any nesting, row-major) as one integer, element 0 in the low bits, each
    element ``width`` bits (two's complement)."""
    raw = 0
    for n, v in enumerate(np.asarray(values, dtype=np.int64).ravel().tolist()):
        raw |= (int(v) & ((1 << width) - 1)) << (n * width)
    return raw


def _np_rng(rng) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(63))


# ------------------------------------------------------------------------------ GEMV


def gemv_vectors(cfg, rng, count: int) -> list:
    """LUT-GEMV and its multiplier baseline (ports ``cmd``, ``x``, ``w``, optional
    ``scale`` and ``q``; output ``y``): random vectors of 1..4 beats of K (``span``
    activations each) over 1..2 row tiles, every run-time precision in turn, random zero
    points (some above ``2**bits - 1``: clamped by the unit), the extreme activations in the
    first vector."""
    nrng = _np_rng(rng)
    span, batch, exp = gemv.span(cfg), gemv.batch(cfg), gemv.exp_bits(cfg)
    precisions = [2] if cfg.ternary else list(range(1, gemv.weight_bits_max(cfg) + 1))
    out_w, act = gemv.out_width(cfg), cfg.act_bits
    vectors, produced, n = [], 0, 0
    while produced < count or n < len(precisions):
        bits = precisions[n % len(precisions)]
        k = span * rng.randint(1, min(4, cfg.k_max // span))
        m = cfg.rows * rng.randint(1, 2)
        if n == len(precisions) - 1:       # the widest precision: the largest vector, always
            k, m = span * min(4, cfg.k_max // span), 2 * cfg.rows
        if getattr(cfg, "tables", "fabric") == "ram":  # a pass holds at most m_max rows
            m = min(m, cfg.m_max)
        x = nrng.integers(-(1 << act - 1), 1 << act - 1, (batch, k))
        if n == 0:
            x[:, ::2] = -(1 << act - 1)
        if cfg.ternary:
            codes, zero = nrng.integers(0, 3, (m, k)), 1
        else:
            codes = nrng.integers(0, 1 << bits, (m, k))
            zero = int(nrng.integers(0, (1 << bits) + (1 if bits < cfg.bits_max else 0)))
        vectors.append(_gemv_vector(cfg, nrng, codes, zero, x, bits, span, batch, exp,
                                    out_w, act))
        produced += m
        n += 1
    return vectors


def _gemv_vector(cfg, nrng, codes, zero, x, bits, span, batch, exp, out_w, act):
    m, k = codes.shape
    scales = shifts = qscales = qzeros = None
    sbits, qg = gemv.scale_bits(cfg), gemv.qgroup(cfg)
    ins: dict[str, list[int]] = {}
    if exp:
        shifts = nrng.integers(0, gemv.max_shift(cfg) + 1, (batch, k // span))
    used, _zero_u, _x_u, bits_u, _shifts_u = gemv.operands(cfg, codes, zero, x, bits, shifts)
    if qg:
        qbits = gemv.qscale_bits(cfg)
        ubits = gemv.command(cfg, bits, 0)[0]
        groups = -(-used.shape[1] // qg)
        qscales = nrng.integers(0, 1 << qbits, (m, groups))
        qzeros = nrng.integers(0, 1 << ubits, (m, groups))
        q = gemv.group_beats(cfg, qscales, qzeros, cfg.rows)
        ins["q"] = [sc | zp << qbits | int(j == len(q) - 1) << (qbits + cfg.bits_max)
                    for j, (sc, zp) in enumerate(q)]
    if sbits:
        scales = nrng.integers(0, 1 << sbits, m)
        ins["scale"] = [int(s) | int(j == m - 1) << sbits for j, s in enumerate(scales)]
    expected = gemv.batch_model(cfg, codes, zero, x, bits, scales, shifts, qscales, qzeros)
    zbits = cfg.bits_max
    ins["cmd"] = [bits | zero << cfg.bits_max.bit_length() | 1 << (cfg.bits_max.bit_length() + zbits)]
    data_bits = batch * span * act
    xs = gemv.batch_activation_beats(x, span, act)
    beats = []
    for j, raw in enumerate(xs):
        if exp:
            raw |= sum(int(sh[j]) << (v * exp) for v, sh in enumerate(shifts)) << data_bits
        beats.append(raw | int(j == len(xs) - 1) << (data_bits + batch * exp))
    ins["x"] = beats
    ws = gemv.weight_beats(cfg, used, bits_u)
    wbits = (cfg.rows * 5 * gemv.lookups(cfg) if cfg.ternary else
             cfg.rows * span * (1 if cfg.family == "lutgemv" else cfg.wbits))
    lasts = gemv.weight_lasts(cfg, m, used.shape[1], bits_u)  # (tables: ram: every row sweep)
    ins["w"] = [raw | last << wbits for raw, last in zip(ws, lasts)]
    ys = [flat(row, out_w) | int(r == m - 1) << (batch * out_w)
          for r, row in enumerate(np.asarray(expected).tolist())]
    return ins, {"y": ys}


# ------------------------------------------------------------------------------ bit-serial


def bitserial_vectors(cfg, rng, count: int) -> list:
    """Bit-serial array (ports ``cmd``, ``w``, ``x``, ``s`` when it has scales or zero
    points; output ``y``: one beat per tile): random tiles of 1..2 groups of K, every
    run-time precision and signedness in turn (a random activation precision in
    ``both_serial``), an extreme tile first; ``count`` counts results (R x C per tile)."""
    nrng = _np_rng(rng)
    p = bs.plan(cfg)
    precisions = [(w, s) for w in range(1, cfg.wbits_max + 1) for s in (True, False)]
    wf = cfg.wbits_max.bit_length()
    wwidth = cfg.wbits_max if cfg.mode == "parallel" else 1
    awidth = 1 if cfg.mode == "both_serial" else cfg.abits
    data_bits = cfg.cols * cfg.lanes * awidth
    tiles = max(len(precisions), -(-count // (cfg.rows * cfg.cols)))
    vectors = []
    for n in range(tiles):
        wbits, wsigned = precisions[n % len(precisions)]
        abits = rng.randint(1, cfg.abits) if cfg.mode == "both_serial" else None
        k = cfg.group_size * rng.randint(1, min(2, cfg.k_max // cfg.group_size))
        if n == len(precisions) - 2:       # the widest precisions: the largest tile, always
            k = cfg.group_size * min(2, cfg.k_max // cfg.group_size)
            abits = cfg.abits if cfg.mode == "both_serial" else None
        tile = bs.random_tile(cfg, nrng, k, wbits, wsigned, abits,
                              kind="extreme" if n == 0 else "random")
        b = bs.beats(cfg, tile)
        cmd = b["cmd"][0]
        raw_cmd = (cmd["wbits"] & ((1 << wf) - 1)) | cmd["wsigned"] << wf
        if cfg.mode == "both_serial":
            raw_cmd |= (cmd["abits"] & ((1 << cfg.abits.bit_length()) - 1)) << (wf + 1)
        ins = {"cmd": [raw_cmd], "w": [flat(w, wwidth) for w in b["w"]],
               "x": [flat(v, awidth) | last << data_bits for v, last in b["x"]]}
        if cfg.scale_bits or cfg.zero_point:
            ins["s"] = [(flat(s["scale"], cfg.scale_bits) if cfg.scale_bits else 0)
                        | (flat(s["zero"], cfg.wbits_max) << cfg.scale_bits * cfg.rows
                           if cfg.zero_point else 0) for s in b["s"]]
        vectors.append((ins, {"y": [flat(bs.model(cfg, tile), p.result_bits)]}))
    return vectors


# ------------------------------------------------------------------------------ softmax


def softmax_vectors(cfg, rng, count: int) -> list:
    """Softmax (``i``: ``data``, ``last``, ``mask`` when the point has one; ``o``: ``data``,
    ``last``): rows of random length 1..n_max (full-range, narrow and dominant-element
    scores, random masks), the corner rows (all at the minimum, all at the maximum, length
    1, length n_max) first."""
    fmt, n_max = cfg.input, cfg.n_max
    rows = [[fmt.min_int] * min(4, n_max), [fmt.max_int] * n_max, [0]]
    total = sum(map(len, rows))
    while total < count:
        n = rng.randint(1, n_max)
        kind = rng.choice(("full", "narrow", "dominant"))
        if kind == "full":
            x = [rng.randint(fmt.min_int, fmt.max_int) for _ in range(n)]
        elif kind == "narrow":
            centre, spread = rng.randint(fmt.min_int, fmt.max_int), 1 << (fmt.frac_bits + 1)
            x = [min(max(centre + rng.randint(-spread, spread), fmt.min_int), fmt.max_int)
                 for _ in range(n)]
        else:
            x = [rng.randint(fmt.min_int, fmt.min_int + (1 << fmt.frac_bits)) for _ in range(n)]
            x[rng.randrange(n)] = rng.randint(fmt.max_int // 2, fmt.max_int)
        rows.append(x)
        total += n
    in_w, out_w = fmt.width, cfg.output.width
    vectors = []
    for x in rows:
        mask = [rng.random() < 0.2 for _ in x] if cfg.mask else [False] * len(x)
        if cfg.mask and rng.random() < 0.5:
            mask = [False] * len(x)
        (y,) = sm.model(cfg, [np.array(x, dtype=np.int64)],
                        [np.array(mask)] if cfg.mask else None)
        n = len(x)
        ins = [(v & ((1 << in_w) - 1)) | int(j == n - 1) << in_w | int(mk) << (in_w + 1)
               for j, (v, mk) in enumerate(zip(x, mask))]
        outs = [(int(v) & ((1 << out_w) - 1)) | int(j == n - 1) << out_w
                for j, v in enumerate(np.asarray(y).tolist())]
        vectors.append(({"i": ins}, {"o": outs}))
    return vectors
