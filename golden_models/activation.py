"""Bit-exact models of the activation unit (GELU, SiLU) and their float references.

Every method maps a signed input code ``x`` (format ``in_fmt``) to a signed output code
(format ``out_fmt``) with integer arithmetic only, exactly as the RTL does.

Methods
-------
``poly``  (the fitted engine)
    Both functions are ReLU minus an even, fast-decaying deviation::

        GELU(x) = relu(x) - g(|x|),  g(t) = t * Phi(-t)
        SiLU(x) = relu(x) - g(|x|),  g(t) = t * sigmoid(-t)

    ``g`` is approximated on ``t = |x|`` in [0, T) by ``S`` uniform segments of ``2**seg_log2``
    input codes, each a polynomial of degree ``order`` in the segment-local offset ``u``
    (``0 <= u < 2**seg_log2``), evaluated by Horner's rule in integers at ``2**-frac`` scale::

        v = c[order];  v = c[k] + ((v * u) >> seg_log2)   for k = order-1 .. 0

    ``>>`` is an arithmetic shift (floor). Beyond ``T`` (where ``g`` is below a quarter of an
    output LSB) ``v = 0``. Then ``y = (relu(x) << (frac - in_frac)) - v`` is narrowed once:
    **round half to even** to ``out_fmt.frac_bits``, then **saturate** to ``out_fmt``.
    Coefficients are least-squares fitted on the segment's own input codes, quantised by
    rounding to nearest, and each segment's ``c[0]`` is then re-centred so its integer error
    is balanced (near-minimax).

``ibert``  (I-BERT's integer i-GELU, Kim et al. 2021, Algorithm 2; GELU only)
    ``erf(x) ~ sign(x) * [a * (min(|x|, -b) + b)**2 + 1]`` with a = -0.2888, b = -1.769, in
    integers with the input scale ``S = 2**-in_frac / 1.4142`` (I-BERT's constant k):
    ``b_int = floor(b/S)``, ``c_int = floor((1/a)/S**2)``,
    ``y = sign(x) * ((min(|x|, -b_int) + b_int)**2 + c_int) >> erf_shift`` (floor; I-BERT
    shifts by a constant 14 "to avoid overflow": here ``erf_shift`` keeps y in 16 bits),
    ``one = floor(1 / S_erf)``, ``q = x * (y + one)``; the result scale
    ``S_out = 2**-in_frac * S_erf / 2`` is applied as a dyadic multiplier
    ``M_int / 2**m_shift`` (M rounded to nearest, 17 significant bits), then **round half to
    even** and **saturate** to ``out_fmt``.

``table``  (a direct table, exact; inputs of at most 12 bits)
    ``out = saturate(round_half_even(f(x)))`` for every input code, indexed by the input's
    raw bits.

The float references (``gelu_float``, ``silu_float``) use float64 and ``math.erf``;
``correctly_rounded`` is the accuracy yardstick (round half to even, saturate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .fixedpoint import QFormat, quantize_float, saturate, shift_round_half_even, signed_width
from .polyfit import fit_segments, horner

FUNCTIONS = ("gelu", "silu")
METHODS = ("poly", "ibert", "table")
TABLE_MAX_INPUT_BITS = 12

_erf = np.frompyfunc(math.erf, 1, 1)


def _erf_array(x) -> np.ndarray:
    return np.asarray(_erf(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def gelu_float(x) -> np.ndarray:
    """GELU(x) = x * Phi(x), float64."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + _erf_array(x / math.sqrt(2.0)))


def silu_float(x) -> np.ndarray:
    """SiLU(x) = x * sigmoid(x), float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-x))


def reference_float(function: str, x) -> np.ndarray:
    return {"gelu": gelu_float, "silu": silu_float}[function](x)


def deviation_float(function: str, t) -> np.ndarray:
    """``g(t) = relu(t) - f(t)`` for ``t >= 0`` (so ``f(x) = relu(x) - g(|x|)``)."""
    t = np.asarray(t, dtype=np.float64)
    if function == "gelu":
        return t * 0.5 * (1.0 - _erf_array(t / math.sqrt(2.0)))
    return t / (1.0 + np.exp(t))


def correctly_rounded(function: str, in_fmt: QFormat, out_fmt: QFormat, codes) -> np.ndarray:
    """The correctly rounded float function of each input code (half-even, saturated)."""
    return quantize_float(reference_float(function, in_fmt.to_float(codes)), out_fmt)


# --------------------------------------------------------------------------- poly


@dataclass(frozen=True)
class PolyTable:
    """Fitted, quantised piecewise-polynomial coefficients of ``g`` (see module docstring)."""

    function: str
    in_fmt: QFormat
    out_fmt: QFormat
    order: int
    seg_log2: int          # a segment spans 2**seg_log2 input codes
    frac: int              # coefficients and Horner values are in units of 2**-frac
    coefs: tuple           # coefs[s][k]: coefficient of u**k in segment s (ints)

    @property
    def segments(self) -> int:
        return len(self.coefs)

    @property
    def widths(self) -> tuple:
        """Signed bit width of each coefficient column (k = 0 .. order)."""
        cols = np.array(self.coefs, dtype=np.int64).reshape(self.segments, self.order + 1)
        return tuple(signed_width(cols[:, k].min(), cols[:, k].max()) for k in range(self.order + 1))

    @property
    def storage_bits(self) -> int:
        return self.segments * sum(self.widths)


@lru_cache(maxsize=64)
def fit_poly(function: str, in_fmt: QFormat, out_fmt: QFormat, order: int,
             max_segments: int, guard_bits: int) -> PolyTable:
    """Fit and quantise the segment coefficients of ``g`` for one design point."""
    half_range = 1 << (in_fmt.width - 1)
    t = np.arange(half_range + 1, dtype=np.int64)
    g = deviation_float(function, t * in_fmt.lsb)
    above = np.nonzero(g > 2.0 ** -(out_fmt.frac_bits + 2))[0]
    domain = int(above.max()) + 1 if len(above) else 1
    seg_log2 = 0
    while -(-domain // (1 << seg_log2)) > max_segments:
        seg_log2 += 1
    segments = -(-domain // (1 << seg_log2))
    frac = max(in_fmt.frac_bits, out_fmt.frac_bits) + guard_bits
    codes = np.arange(min(segments << seg_log2, half_range + 1), dtype=np.int64)
    coefs = fit_segments(g[codes] * 2.0 ** frac, seg_log2, order)
    return PolyTable(function, in_fmt, out_fmt, order, seg_log2, frac,
                     tuple(tuple(int(c) for c in row) for row in coefs))


def poly_model(table: PolyTable, x) -> np.ndarray:
    """Bit-exact output codes of the ``poly`` engine for input codes ``x``."""
    x = np.asarray(x, dtype=np.int64)
    t = np.abs(x)
    seg = t >> table.seg_log2
    inside = seg < table.segments
    u = t & ((1 << table.seg_log2) - 1)
    coefs = np.array(table.coefs, dtype=np.int64).reshape(table.segments, table.order + 1)
    v = horner(coefs, np.where(inside, seg, 0), u, table.order, table.seg_log2)
    v = np.where(inside, v, 0)
    y = (np.maximum(x, 0) << (table.frac - table.in_fmt.frac_bits)) - v
    return saturate(shift_round_half_even(y, table.frac - table.out_fmt.frac_bits), table.out_fmt)


# --------------------------------------------------------------------------- ibert

IBERT_A, IBERT_B, IBERT_K = -0.2888, -1.769, 1.4142


@dataclass(frozen=True)
class IbertConstants:
    """Integer constants of I-BERT's i-GELU for one input/output format pair."""

    in_fmt: QFormat
    out_fmt: QFormat
    b_int: int
    c_int: int
    erf_shift: int
    one_int: int
    m_int: int
    m_shift: int


@lru_cache(maxsize=64)
def ibert_constants(in_fmt: QFormat, out_fmt: QFormat) -> IbertConstants:
    scale = in_fmt.lsb / IBERT_K
    b_int = math.floor(IBERT_B / scale)
    c_int = math.floor((1.0 / IBERT_A) / scale ** 2)
    y_bits = signed_width(min(c_int, b_int * b_int + c_int), b_int * b_int + c_int)
    erf_shift = max(0, y_bits - 16)
    s_erf = scale ** 2 * IBERT_A * 2 ** erf_shift
    one_int = math.floor(1.0 / s_erf)
    multiplier = in_fmt.lsb * s_erf / 2 * 2.0 ** out_fmt.frac_bits
    m_shift = 16 - math.floor(math.log2(abs(multiplier)))
    m_int = round(multiplier * 2.0 ** m_shift)
    return IbertConstants(in_fmt, out_fmt, b_int, c_int, erf_shift, one_int, m_int, m_shift)


def ibert_model(consts: IbertConstants, x) -> np.ndarray:
    """Bit-exact output codes of I-BERT's i-GELU (see module docstring)."""
    x = np.asarray(x, dtype=np.int64)
    clipped = np.minimum(np.abs(x), -consts.b_int) + consts.b_int
    y = np.sign(x) * (clipped * clipped + consts.c_int)
    y = y >> consts.erf_shift
    q = x * (y + consts.one_int)
    # q * m_int can exceed int64 for wide formats: use Python ints (object arrays).
    r = q.astype(object) * consts.m_int
    out = np.array([shift_round_half_even(int(v), consts.m_shift) for v in r], dtype=np.int64) \
        if q.size else np.zeros(0, dtype=np.int64)
    return saturate(out.reshape(x.shape), consts.out_fmt)


# --------------------------------------------------------------------------- table


def table_values(function: str, in_fmt: QFormat, out_fmt: QFormat) -> np.ndarray:
    """Table contents, indexed by the input's raw (unsigned) bits."""
    raw = np.arange(1 << in_fmt.width, dtype=np.int64)
    codes = np.where(raw >= (1 << (in_fmt.width - 1)), raw - (1 << in_fmt.width), raw)
    return correctly_rounded(function, in_fmt, out_fmt, codes)


def table_model(function: str, in_fmt: QFormat, out_fmt: QFormat, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return table_values(function, in_fmt, out_fmt)[x & ((1 << in_fmt.width) - 1)]


# --------------------------------------------------------------------------- dispatch


def model(cfg, x) -> np.ndarray:
    """Bit-exact outputs for an activation design point ``cfg`` (duck-typed: ``function``,
    ``method``, ``input``, ``output``, ``order``, ``segments``, ``guard_bits``)."""
    if cfg.method == "poly":
        return poly_model(fit_poly(cfg.function, cfg.input, cfg.output, cfg.order,
                                   cfg.segments, cfg.guard_bits), x)
    if cfg.method == "ibert":
        return ibert_model(ibert_constants(cfg.input, cfg.output), x)
    return table_model(cfg.function, cfg.input, cfg.output, x)


def coefficient_bits(cfg) -> int:
    """Bits of constant storage the method needs (coefficient ROM / table / constants)."""
    if cfg.method == "poly":
        return fit_poly(cfg.function, cfg.input, cfg.output, cfg.order,
                        cfg.segments, cfg.guard_bits).storage_bits
    if cfg.method == "table":
        return (1 << cfg.input.width) * cfg.output.width
    c = ibert_constants(cfg.input, cfg.output)
    return sum(signed_width(v, v) for v in (c.b_int, c.c_int, c.one_int, c.m_int))


def error_lsb(outputs, reference) -> tuple[int, float]:
    """(max, mean) absolute error in output LSBs."""
    diff = np.abs(np.asarray(outputs, dtype=np.int64) - np.asarray(reference, dtype=np.int64))
    return int(diff.max()), float(diff.mean())
