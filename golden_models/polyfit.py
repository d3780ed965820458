"""Piecewise-polynomial fitting over integer codes and its integer Horner evaluation.

Shared by every engine that approximates a smooth function on uniform segments of an
integer code range (the activation unit's deviation ``g``, the softmax unit's ``2**-r``).
A segment spans ``2**seg_log2`` codes; inside it the polynomial is in the segment-local
offset ``u`` (``0 <= u < 2**seg_log2``), evaluated in integers by Horner's rule::

    v = c[order];  v = c[k] + ((v * u) >> seg_log2)   for k = order-1 .. 0

``>>`` is an arithmetic shift (floor). Order 0 is a plain table (one value per segment).
"""
from __future__ import annotations

import numpy as np


def horner(coefs: np.ndarray, seg: np.ndarray, u: np.ndarray, order: int, seg_log2: int) -> np.ndarray:
    """Integer Horner evaluation of segment ``seg``'s polynomial at offsets ``u`` (int64)."""
    v = coefs[seg, order].copy()
    for k in range(order - 1, -1, -1):
        v = coefs[seg, k] + ((v * u) >> seg_log2)
    return v


def fit_segments(target: np.ndarray, seg_log2: int, order: int) -> np.ndarray:
    """Fit ``target`` (floats, already scaled to integer units, one per code 0..len-1) by
    ``ceil(len / 2**seg_log2)`` segments of degree ``order``; returns int64 coefficients
    ``[segment, k]``.

    Each segment is least-squares fitted on its own codes, the coefficients are rounded to
    the nearest integer, and ``c[0]`` is then re-centred so the integer error of the Horner
    evaluation is balanced (near-minimax).
    """
    span = 1 << seg_log2
    segments = -(-len(target) // span)
    coefs = np.zeros((segments, order + 1), dtype=np.int64)
    for s in range(segments):
        codes = np.arange(s * span, min((s + 1) * span, len(target)), dtype=np.int64)
        u = codes - s * span
        basis = np.vander(u / span, order + 1, increasing=True)
        fitted = np.linalg.lstsq(basis, target[codes], rcond=None)[0]
        coefs[s] = np.rint(fitted).astype(np.int64)
        error = horner(coefs, np.full(len(u), s), u, order, seg_log2) - target[codes]
        coefs[s, 0] -= int(np.rint((error.max() + error.min()) / 2))
    return coefs
