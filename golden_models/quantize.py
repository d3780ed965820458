"""Weight quantisers that produce what the hardware stores (numpy only).

A quantised weight matrix ``W`` (R, K) is stored as the bit-serial array / GEMV units read
it: integer weights ``Q`` (R, K) of ``bits`` bits (signed two's complement for symmetric
quantisation, unsigned for asymmetric), and per group ``s`` of ``G`` columns an unsigned
integer scale ``S[r, s]`` of ``scale_bits`` bits and a zero point ``Z[r, s]`` in the weight
format (0 when symmetric); one float ``base[r]`` per row is applied outside the unit::

    W_hat[r, k] = base[r] * S[r, s(k)] * (Q[r, k] - Z[r, s(k)])

Steps (every narrowing stated):

1. **Group parameters** (float): symmetric ``scale = clip * max|w| / (2**(bits-1) - 1)``
   (levels ``-2**(bits-1) .. 2**(bits-1) - 1``; at 2 bits that is ternary plus the clipped
   -2); asymmetric ``lo = clip * min(w, 0)``, ``hi = clip * max(w, 0)``, ``scale = (hi - lo) /
   (2**bits - 1)``. ``clip`` is 1, or per group the ratio of a grid (1.0 down to 0.5) with the
   least squared error (``mse=True``, the MSE clipping search).
2. **Integer scales**: ``base[r] = max_s scale[r, s] / (2**scale_bits - 1)`` and
   ``S = clamp(round(scale / base), 1, 2**scale_bits - 1)`` (**round half to even**); the
   effective scale is ``base * S``. Without integer scales (``scale_bits = 0``) a row has one
   scale (``S = 1``): group quantisation needs ``scale_bits > 0``.
3. **Zero points** (asymmetric): ``Z = clamp(round(-lo / (base * S)), 0, 2**bits - 1)``.
4. **Weights**: ``Q = clamp(round(w / (base * S)) + Z)`` into the weight format (**round half
   to even**, **saturate**) — RTN; or GPTQ (:func:`gptq`) with the same static grids.

Limits of the chosen design point (:class:`Limits`) are checked first; a violation raises
``ValueError`` with a one-line message.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUP_SIZES = (32, 64, 128)
#: bits of the per-row float base (stored as float16)
BASE_BITS = 16


@dataclass(frozen=True)
class Limits:
    """What the unit can store: weight bits, its scale group, scale bits, zero points."""

    wbits_max: int
    group_size: int        # the unit's scale group along K
    scale_bits: int        # 0: no integer scales
    zero_point: bool

    @classmethod
    def of_bitserial(cls, cfg) -> "Limits":
        return cls(cfg.wbits_max, cfg.group_size, cfg.scale_bits, cfg.zero_point)

    @classmethod
    def of_gemv(cls, bits_max: int, span: int, qgroup: int, qscale_bits: int) -> "Limits":
        """A GEMV unit (LUT-GEMV or the multiplier baseline): with ``qgroup`` G a scale and
        a zero point per row and group of G (``qscale_bits``); without, one zero point per
        pass (the ``cmd`` beat), so per row and symmetric only, K a multiple of ``span``."""
        if qgroup:
            return cls(bits_max, qgroup, qscale_bits, True)
        return cls(bits_max, span, 0, False)


@dataclass(frozen=True)
class Scheme:
    """How to quantise: ``bits``, ``group`` (None: per row), symmetric or not, ``mse``
    clipping search, ``method`` ``rtn`` or ``gptq`` (``damp``: GPTQ's dampening of ``H``,
    times its mean diagonal; 0.1 measured better than 0.01 on MiniLM)."""

    bits: int
    group: int | None = 128
    symmetric: bool = True
    mse: bool = False
    method: str = "rtn"
    damp: float = 0.1

    def label(self, abits: int | None = None) -> str:
        g = "row" if self.group is None else f"g{self.group}"
        a = f"A{abits}" if abits else ""
        return (f"W{self.bits}{a} {self.method.upper()} {g}" + ("" if self.symmetric else " zp")
                + (" mse" if self.mse else ""))


def check_scheme(scheme: Scheme, limits: Limits, k: int | None = None) -> None:
    """One-line ValueError unless the unit can store ``scheme``."""
    if scheme.method not in ("rtn", "gptq"):
        raise ValueError(f"method {scheme.method!r}: expected rtn or gptq")
    if not 1 <= scheme.bits <= limits.wbits_max:
        raise ValueError(f"{scheme.bits}-bit weights: the unit takes 1..{limits.wbits_max} bits")
    if scheme.symmetric and scheme.bits < 2:
        raise ValueError("symmetric quantisation needs at least 2 bits (use zero points)")
    if not scheme.symmetric and not limits.zero_point:
        raise ValueError("asymmetric quantisation needs a unit with zero_point: true")
    if scheme.group is not None:
        if scheme.group not in GROUP_SIZES:
            raise ValueError(f"group {scheme.group}: expected one of {GROUP_SIZES} or per row")
        if limits.scale_bits == 0:
            raise ValueError(f"group {scheme.group}: the unit has no group scales (scale_bits: 0); "
                             "quantise per row")
        if scheme.group % limits.group_size:
            raise ValueError(f"group {scheme.group} is not a multiple of the unit's group_size "
                             f"{limits.group_size}")
    if k is not None and k % (scheme.group or limits.group_size):
        raise ValueError(f"K = {k} is not a multiple of group {scheme.group or limits.group_size}")


@dataclass
class QuantizedWeight:
    """The stored form: ``q`` (R, K), ``scales``/``zeros`` (R, K/unit group), ``base`` (R,)."""

    q: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray
    base: np.ndarray
    bits: int
    signed: bool
    unit_group: int
    scheme: Scheme
    limits: Limits

    def dequantize(self) -> np.ndarray:
        g = self.unit_group
        s = np.repeat(self.scales, g, axis=1).astype(np.float64)
        z = np.repeat(self.zeros, g, axis=1)
        return self.base[:, None] * s * (self.q - z)

    def bits_per_weight(self) -> float:
        return bits_per_weight(self.scheme, self.limits, self.q.shape[1])


def bits_per_weight(scheme: Scheme, limits: Limits, k: int) -> float:
    """Storage per weight: the weight, its group's integer scale and zero point (per the
    quantiser's group; the unit's finer groups repeat them and need not be stored twice),
    and the row's 16-bit float base."""
    g = scheme.group or k
    per_group = (limits.scale_bits if scheme.group else 0) + (0 if scheme.symmetric else scheme.bits)
    return scheme.bits + per_group / g + BASE_BITS / k


def _levels(bits: int, symmetric: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if symmetric else (0, (1 << bits) - 1)


CLIP_GRID = np.linspace(1.0, 0.5, 21)


def _float_params(wg: np.ndarray, scheme: Scheme, clip) -> tuple[np.ndarray, np.ndarray]:
    """Float scale and (real-valued) ``lo`` per group of ``wg`` (R, n, G); ``clip`` (R, n)."""
    if scheme.symmetric:
        scale = clip * np.abs(wg).max(axis=2) / ((1 << (scheme.bits - 1)) - 1)
        lo = np.zeros_like(scale)
    else:
        lo = clip * np.minimum(wg.min(axis=2), 0.0)
        hi = clip * np.maximum(wg.max(axis=2), 0.0)
        scale = (hi - lo) / ((1 << scheme.bits) - 1)
    return np.where(scale > 0, scale, 1e-12), lo


def _quantize_groups(wg, scale, zeros, scheme) -> np.ndarray:
    lo, hi = _levels(scheme.bits, scheme.symmetric)
    return np.clip(np.rint(wg / scale[..., None]) + zeros[..., None], lo, hi)


def _zeros(lo, scale, scheme) -> np.ndarray:
    if scheme.symmetric:
        return np.zeros_like(scale)
    return np.clip(np.rint(-lo / scale), 0, (1 << scheme.bits) - 1)


def group_grid(w: np.ndarray, scheme: Scheme, limits: Limits):
    """Steps 1-3: per quantiser group the effective scale, zero point, integer scale and
    the row base: ``(eff_scale, zeros, int_scales, base)``, the first three (R, K/group)."""
    rows, k = w.shape
    g = scheme.group or k
    wg = w.reshape(rows, k // g, g)
    if scheme.mse:
        best_err = np.full(wg.shape[:2], np.inf)
        clip = np.ones(wg.shape[:2])
        for ratio in CLIP_GRID:
            c = np.full(wg.shape[:2], ratio)
            scale, lo = _float_params(wg, scheme, c)
            z = _zeros(lo, scale, scheme)
            err = ((( _quantize_groups(wg, scale, z, scheme) - z[..., None]) * scale[..., None]
                    - wg) ** 2).sum(axis=2)
            better = err < best_err
            best_err, clip = np.where(better, err, best_err), np.where(better, ratio, clip)
    else:
        clip = np.ones(wg.shape[:2])
    scale, lo = _float_params(wg, scheme, clip)
    if scheme.group is not None:
        smax = (1 << limits.scale_bits) - 1
        base = scale.max(axis=1) / smax
        ints = np.clip(np.rint(scale / base[:, None]), 1, smax)
    else:
        base, ints = scale[:, 0].copy(), np.ones_like(scale)
    eff = base[:, None] * ints
    return eff, _zeros(lo, eff, scheme), ints.astype(np.int64), base


def _stored(w, q, zeros, ints, base, scheme, limits) -> QuantizedWeight:
    rows, k = w.shape
    g = scheme.group or k
    unit_g = limits.group_size if limits.group_size <= k else k
    rep = g // unit_g
    return QuantizedWeight(q=q.astype(np.int64), scales=np.repeat(ints, rep, axis=1),
                           zeros=np.repeat(zeros.astype(np.int64), rep, axis=1),
                           base=base.astype(np.float64), bits=scheme.bits,
                           signed=scheme.symmetric, unit_group=unit_g, scheme=scheme,
                           limits=limits)


def rtn(w: np.ndarray, scheme: Scheme, limits: Limits) -> QuantizedWeight:
    """Round-to-nearest onto the grid of :func:`group_grid` (steps 1-4)."""
    w = np.asarray(w, dtype=np.float64)
    check_scheme(scheme, limits, w.shape[1])
    eff, zeros, ints, base = group_grid(w, scheme, limits)
    rows, k = w.shape
    g = scheme.group or k
    q = _quantize_groups(w.reshape(rows, k // g, g), eff, zeros, scheme).reshape(rows, k)
    return _stored(w, q, zeros, ints, base, scheme, limits)


def hessian(x: np.ndarray) -> np.ndarray:
    """``H = 2/T * X^T X`` of a layer's calibration inputs ``x`` (T, K)."""
    x = np.asarray(x, dtype=np.float64)
    return 2.0 / max(1, len(x)) * (x.T @ x)


def gptq(w: np.ndarray, h: np.ndarray, scheme: Scheme, limits: Limits, damp: float = 0.1,
         block: int = 128, act_order: bool = True) -> QuantizedWeight:
    """GPTQ (Frantar et al. 2022) with act-order and static groups: the grids (scales, zero
    points, integer scales) are fixed from the unquantised ``w`` per group first
    (:func:`group_grid`), then columns are quantised in descending ``diag(H)`` order, each on
    its own group's grid, the error of each spread over the columns not yet quantised
    through the Cholesky factor of ``H^-1`` (dampened by ``damp`` times its mean diagonal)."""
    w = np.array(w, dtype=np.float64)
    check_scheme(scheme, limits, w.shape[1])
    rows, k = w.shape
    g = scheme.group or k
    eff, zeros, ints, base = group_grid(w, scheme, limits)
    h = np.array(h, dtype=np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(k)
    w, h = w[:, perm], h[np.ix_(perm, perm)]
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T            # upper Cholesky factor of H^-1
    qlo, qhi = _levels(scheme.bits, scheme.symmetric)
    grp = perm // g
    q = np.zeros((rows, k))
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            col = i1 + i
            s, z = eff[:, grp[col]], zeros[:, grp[col]]
            qc = np.clip(np.rint(w1[:, i] / s) + z, qlo, qhi)
            q[:, col] = qc
            e = (w1[:, i] - (qc - z) * s) / hinv[col, col]
            w1[:, i:] -= np.outer(e, hinv[col, col:i2])
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    out = np.empty_like(q)
    out[:, perm] = q
    return _stored(w, out, zeros, ints, base, scheme, limits)


def quantize(w: np.ndarray, scheme: Scheme, limits: Limits, h: np.ndarray | None = None
             ) -> QuantizedWeight:
    """RTN or GPTQ per ``scheme.method`` (GPTQ needs the layer's Hessian ``h``)."""
    if scheme.method == "gptq":
        if h is None:
            raise ValueError("GPTQ needs calibration activations (a Hessian)")
        return gptq(w, h, scheme, limits, damp=scheme.damp)
    return rtn(w, scheme, limits)
