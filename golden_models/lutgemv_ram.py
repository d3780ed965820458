"""Weight-stream order and framing of the RAM-table LUT-GEMV (``tables: ram``); the
arithmetic is ``golden_models.lutgemv``'s (the same numbers, bit for bit).

With ``tables: ram`` the ``rows`` parameter is the number P of physical lanes; a pass of M
rows (a multiple of P, at most ``m_max``) keeps ``R = M / P`` row accumulators per lane, row
``r * P + p`` in lane ``p``'s word ``r``. Weights come "group outer": for each table group
``j`` (columns ``j*g .. j*g+g-1``), for each plane ``i`` from ``bits-1`` down to 0, one sweep
over the local rows ``r = 0 .. R-1``: one beat of ``P * g`` bits, bit ``p*g + l`` = plane ``i``
of code ``Q[r*P + p, j*g + l]``. ``last`` marks the final beat of every sweep (``r = R-1``),
so the unit learns R from the stream; the pass ends with the final sweep of the vector's
last group (plane 0).
"""
from __future__ import annotations

import numpy as np


def in_ram(cfg) -> bool:
    """Whether a design point keeps its tables (and accumulators) in RAM."""
    return getattr(cfg, "tables", "fabric") == "ram"


def weight_beats(cfg, codes, bits: int) -> list[int]:
    """Raw ``w`` data of one pass over ``codes`` (M x K; M a multiple of ``rows``, at most
    ``m_max``), in the order of the module docstring."""
    codes = np.asarray(codes, dtype=np.int64)
    (m, k), P, g = codes.shape, cfg.rows, cfg.group
    assert m % P == 0 and m <= cfg.m_max and k % g == 0, (codes.shape, P, cfg.m_max)
    weights = 1 << np.arange(P * g, dtype=object)
    beats = []
    for j in range(k // g):
        block = codes[:, j * g:(j + 1) * g].reshape(m // P, P * g)  # (r, p*g + l)
        for i in range(bits - 1, -1, -1):
            plane = ((block >> i) & 1).astype(object)
            beats += [int(v) for v in plane @ weights]
    return beats


def weight_lasts(cfg, m: int, k: int, bits: int) -> list[int]:
    """``last`` of each beat of :func:`weight_beats`: set on every sweep's final beat."""
    sweep = [0] * (m // cfg.rows - 1) + [1]
    return sweep * (bits * (k // cfg.group))
