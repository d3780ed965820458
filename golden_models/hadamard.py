"""Golden model of the Hadamard rotation unit: an exact integer Walsh-Hadamard transform.

Algorithm
---------
For a vector ``x`` of ``N = 2**n`` signed integers the unit computes ``H_N x`` with the
Sylvester Hadamard matrix ``H_1 = [1]``, ``H_2N = [[H_N, H_N], [H_N, -H_N]]`` (natural,
not sequency, order): ``n`` radix-2 stages of add/sub butterflies, stage ``k`` (k = 0 first)
pairing elements ``N / 2**(k+1)`` apart, ``(a, b) -> (a + b, a - b)``. Every stage is exact
and grows the range by one bit, so ``n`` bits in all: a ``width``-bit input gives results
in ``width + n`` bits, with no rounding and no saturation.

Normalisation: the result is then divided by ``2**shift`` (``0 <= shift <= n``) and rounded
to nearest, ties to even (``fixedpoint.shift_round_half_even``), still exact integers
(``shift = n / 2`` makes the transform orthonormal for even ``n``: ``H_N / sqrt(N)``). The
output width :func:`output_width` is derived from the exact range :func:`output_bounds`,
so nothing saturates: ``width + n - shift`` bits, one more when ``shift == n`` (a tie
``2**(width-1) - 1/2`` rounds up to ``2**(width-1)``).

Vectors are exactly ``N`` elements; the unit marks the last result of each with ``last``.
The float reference :func:`wht_float` is ``H_N x / 2**shift`` in float64.
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import shift_round_half_even, signed_width


def hadamard_matrix(length: int) -> np.ndarray:
    """The Sylvester Hadamard matrix ``H_length`` (entries +-1, int64)."""
    if length < 1 or length & (length - 1):
        raise ValueError(f"length {length} is not a power of two")
    h = np.ones((1, 1), dtype=np.int64)
    while len(h) < length:
        h = np.block([[h, h], [h, -h]])
    return h


def wht(x) -> np.ndarray:
    """``H_N x`` along the last axis (exact int64), by the unit's butterflies (span N/2 first)."""
    y = np.array(x, dtype=np.int64)
    n = y.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"vector length {n} is not a power of two")
    span = n // 2
    while span >= 1:
        blocks = y.reshape(*y.shape[:-1], n // (2 * span), 2, span)
        a, b = blocks[..., 0, :], blocks[..., 1, :]
        y = np.stack([a + b, a - b], axis=-2).reshape(y.shape)
        span //= 2
    return y


def output_bounds(width: int, log2_length: int, shift: int) -> tuple[int, int]:
    """The exact range of the unit's results for ``width``-bit signed inputs.

    ``H_N x`` is smallest (``-N 2**(width-1)``) for all inputs at their minimum (row 0) and
    largest (``N 2**(width-1) - N/2``) when a row's +1 half is at the maximum and its -1 half
    at the minimum (``N/2 (2**(width-1) - 1) + N/2 2**(width-1)``); for ``N = 1`` it is the
    input's range. Both ends after the rounding shift."""
    n = 1 << log2_length
    lo = -n << (width - 1)
    hi = (n << (width - 1)) - n // 2 if n > 1 else (1 << (width - 1)) - 1
    return int(shift_round_half_even(lo, shift)), int(shift_round_half_even(hi, shift))


def output_width(width: int, log2_length: int, shift: int) -> int:
    """Bits of the signed results (``width + n - shift``, +1 when ``shift == n``)."""
    return signed_width(*output_bounds(width, log2_length, shift))


def stage_widths(width: int, log2_length: int) -> list[int]:
    """Width of each butterfly stage's results (stage k: ``width + k + 1``)."""
    return [width + k + 1 for k in range(log2_length)]


def model(config, vectors) -> np.ndarray:
    """The unit's results for ``vectors`` (M, N) (or one vector): ``round_half_even(H_N x /
    2**shift)``, int64, same shape; ``config`` gives ``length``, ``width`` and ``shift``. Inputs outside ``config.width`` bits are refused."""
    x = np.asarray(vectors, dtype=np.int64)
    n = config.length
    if x.shape[-1] != n:
        raise ValueError(f"vectors of {x.shape[-1]} elements; the unit takes {n}")
    lo, hi = -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"inputs outside {config.width}-bit signed [{lo}, {hi}]")
    return shift_round_half_even(wht(x), config.shift)


def wht_float(x, shift: int = 0) -> np.ndarray:
    """Float reference: ``H_N x / 2**shift`` along the last axis (float64, by the matrix)."""
    x = np.asarray(x, dtype=np.float64)
    return x @ hadamard_matrix(x.shape[-1]).T.astype(np.float64) / 2.0 ** shift


def orthonormal(length: int) -> np.ndarray:
    """``H_length / sqrt(length)`` (float64; symmetric and its own inverse)."""
    return hadamard_matrix(length).astype(np.float64) / np.sqrt(length)
