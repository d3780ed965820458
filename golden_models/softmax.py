"""Bit-exact model of the streaming softmax unit, its float reference and error metrics.

Rows of signed input codes ``x`` (format ``input``, fraction bits ``f``) become unsigned
probability codes (format ``output``, fraction bits ``ob``). Every step is integer
arithmetic, exactly as the RTL does it; ``g`` is ``guard_bits``, ``n_max`` the longest row.

1. **Max.** ``m = max(x)`` over the unmasked elements (``m = input.min_int`` if none).
2. **Exponent.** ``d = m - x >= 0`` (input LSBs), times ``L = round(log2(e) * 2**rf)``
   with ``rf = ob + g`` fraction bits: ``z = (d * L) >> f`` (**floor**), the base-2 exponent
   ``d * log2(e)`` in units of ``2**-rf``. ``k = z >> rf`` (integer part, a shift) and
   ``r = z mod 2**rf`` (fraction).
3. **Fraction.** ``v ~ 2**(hf - r/2**rf)`` with ``hf = ob + g``: ``exp_segments`` uniform
   segments of ``r``, degree ``exp_order`` (0 = a plain table), integer Horner (floor
   shifts, see ``golden_models.polyfit``); coefficients fitted once per design point.
4. **Scale.** ``e = (v << (ef - hf)) >> min(k, ef + 1)`` (**floor**), ``ef = hf +
   ceil(log2(n_max))``; a masked element has ``e = 0``.
5. **Sum.** ``S = sum(e)`` (exact; width from the largest ``e`` times ``n_max``).
6. **Reciprocal.** The divisor keeps ``hf`` fraction bits, ``D = S >> (ef - hf)``
   (**floor**), and ``R = floor(2**(hf + ob + g) / D)`` by restoring division with ``QB =
   ob + g + 2`` quotient bits (``R = 2**QB - 1`` when ``D = 0``, i.e. every element masked).
7. **Output.** ``es = ob + g``; ``e_s = round_half_even(e, ef - es)``;
   ``p = saturate(round_half_even(e_s * R, es + g), output)`` (**round half to even**, then
   **saturate**: 1.0 clamps to the largest code of a UQ0.x format).

**Online max** (``max_mode: online``, :func:`online_row_model`): one pass over the row,
sequential per element as the hardware runs it, in base-2 units with an *integer* running
max so that every rescale is a plain shift:

1. ``t = (x * L) >> f`` (**floor**), the absolute base-2 exponent in units ``2**-rf``;
   ``c = ceil(t / 2**rf)`` (exact, an integer).
2. ``M_i = max(M_{i-1}, c_i)`` over unmasked elements (``M_0 = c(input.min_int)``);
   ``w_i = M_i * 2**rf - t_i >= 0``; ``e_i`` from ``w_i`` by steps 3-4 (``k = w >> rf``,
   ``r = w mod 2**rf``); masked: ``e = 0``, ``M`` unchanged.
3. Two partial sums, of the even and of the odd elements (so the hardware's rescale-and-add
   loop spans two cycles): ``A_i = (A_{i-2} >> (M_i - M_{i-2})) + e_i`` (``A_i = e_i`` for
   ``i < 2``), and at the row's end ``S = A_{n-1} + (A_{n-2} >> (M_n - M_{n-1}))``
   (``A_{-1} = 0``). Every shift is a **floor**: the only rounding the online max adds
   (``sum(e') <= S <= sum(e') + n``, ``e'`` below).
4. The reciprocal of the final ``S`` as in step 6. Output: ``e'_i = e_i >> (M - M_i)``
   (**floor**; floors of shifts compose, so ``e'_i`` is exactly ``e`` computed against the
   final ``M``), then step 7 with ``e'``.

The row maximum's own ``e`` lies in ``(2**(ef-1), 2**ef]`` (``M`` is the ceiling of the
maximum's exponent), so every ``e`` has one bit less relative precision than with the row
buffer; ``e_zero`` is the smallest ``e`` a row maximum can have (it bounds the divisor).

A row longer than ``n_max`` is cut: its ``n_max``-th beat ends the row (see
:func:`split_rows`). The float reference is ``softmax_float`` of the *quantised* inputs
(masked elements excluded and output 0); ``correctly_rounded`` quantises it (half even,
saturate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .fixedpoint import QFormat, quantize_float, saturate, shift_round_half_even
from .polyfit import fit_segments, horner


def clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class SoftmaxConstants:
    """Every build-time constant of one design point (widths are derived, not chosen)."""

    input: QFormat
    output: QFormat
    n_max: int
    rf: int            # fraction bits of the base-2 exponent z
    log2e: int         # L = round(log2(e) * 2**rf)
    hf: int            # fraction bits of the Horner value v
    ef: int            # fraction bits of e and of the sum S
    es: int            # fraction bits of the stored e_s
    q: int             # extra fraction bits of the reciprocal R (= guard_bits)
    qb: int            # quotient bits of R
    order: int
    seg_log2: int      # a segment of r spans 2**seg_log2 codes
    coefs: tuple       # coefs[segment][k]
    e_max: int         # the largest e (d = 0)
    e_zero: int        # the smallest e of a row's maximum (buffer: e at d = 0)
    online: bool = False  # max_mode online (single pass, integer base-2 running max)

    @property
    def segments(self) -> int:
        return len(self.coefs)

    @property
    def k_max(self) -> int:
        """Shift amounts are capped here: every e is 0 from this shift on."""
        return self.ef + 1

    @property
    def sum_max(self) -> int:
        return self.e_max * self.n_max

    @property
    def divisor_shift(self) -> int:
        """The sum's extra fraction bits dropped before the division (``ef - hf``)."""
        return self.ef - self.hf

    @property
    def divisor_max(self) -> int:
        return self.sum_max >> self.divisor_shift

    @property
    def numerator_log2(self) -> int:
        return self.hf + self.output.frac_bits + self.q

    def coef_array(self) -> np.ndarray:
        return np.array(self.coefs, dtype=np.int64).reshape(self.segments, self.order + 1)


@lru_cache(maxsize=32)
def constants(in_fmt: QFormat, out_fmt: QFormat, n_max: int, exp_order: int,
              exp_segments: int, guard_bits: int, max_mode: str = "buffer") -> SoftmaxConstants:
    """Fit the exp2 fraction engine and derive every width for one design point."""
    ob, g = out_fmt.frac_bits, guard_bits
    rf = hf = es = ob + g
    ef = hf + clog2(n_max)
    seg_log2 = rf - clog2(exp_segments)
    r = np.arange(1 << rf, dtype=np.int64)
    target = np.exp2(hf - r / 2.0 ** rf)
    coefs = fit_segments(target, seg_log2, exp_order)
    v = horner(coefs, r >> seg_log2, r & ((1 << seg_log2) - 1), exp_order, seg_log2)
    assert v.min() > 0, "exp2 fraction engine must stay positive"
    e_all = v << (ef - hf)
    online = max_mode == "online"
    return SoftmaxConstants(in_fmt, out_fmt, n_max, rf, round(math.log2(math.e) * 2 ** rf), hf, ef,
                            es, g, ob + g + 2, exp_order, seg_log2,
                            tuple(tuple(int(c) for c in row) for row in coefs),
                            int(e_all.max()), int(e_all[-1] if online else e_all[0]), online)


def constants_of(cfg) -> SoftmaxConstants:
    """Constants of a softmax design point (duck-typed: ``input``, ``output``, ``n_max``,
    ``exp_order``, ``exp_segments``, ``guard_bits``, ``max_mode``)."""
    return constants(cfg.input, cfg.output, cfg.n_max, cfg.exp_order, cfg.exp_segments, cfg.guard_bits,
                     cfg.max_mode)


def exponentials(c: SoftmaxConstants, d) -> np.ndarray:
    """Steps 2-4: ``e`` (units ``2**-ef``) of non-negative distances ``d`` from the row max."""
    d = np.asarray(d, dtype=np.int64)
    return exp2_neg(c, (d * c.log2e) >> c.input.frac_bits)


def exp2_neg(c: SoftmaxConstants, z) -> np.ndarray:
    """Steps 3-4: ``e ~ 2**(ef - z / 2**rf)`` of non-negative base-2 exponents ``z``."""
    z = np.asarray(z, dtype=np.int64)
    k = np.minimum(z >> c.rf, c.k_max)
    r = z & ((1 << c.rf) - 1)
    v = horner(c.coef_array(), r >> c.seg_log2, r & ((1 << c.seg_log2) - 1), c.order, c.seg_log2)
    return (v << (c.ef - c.hf)) >> k


def reciprocal(c: SoftmaxConstants, total: int) -> int:
    """Step 6: ``floor(2**(hf+ob+g) / (S >> (ef - hf)))``, or all ones for a zero divisor."""
    divisor = int(total) >> c.divisor_shift
    if divisor == 0:
        return (1 << c.qb) - 1
    quotient = (1 << c.numerator_log2) // divisor
    assert quotient < 1 << c.qb, "the quotient must fit QB bits (S >= e_zero / 4)"
    return quotient


def row_model(c: SoftmaxConstants, x, mask=None) -> np.ndarray:
    """Bit-exact output codes of one row (``mask[i]`` true: element i is masked)."""
    x = np.asarray(x, dtype=np.int64)
    mask = np.zeros(len(x), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if c.online:
        return online_row_model(c, x, mask)
    live = ~mask
    m = int(x[live].max()) if live.any() else c.input.min_int
    e = np.where(live, exponentials(c, np.where(live, m - x, 0)), 0)
    r = reciprocal(c, int(e.sum()))
    return _scale(c, e, r)


def _scale(c: SoftmaxConstants, e, r: int) -> np.ndarray:
    """Step 7: ``p = saturate(round_half_even(round_half_even(e, ef - es) * R, es + g))``."""
    e_s = shift_round_half_even(np.asarray(e, dtype=np.int64), c.ef - c.es)
    return saturate(shift_round_half_even(e_s * r, c.es + c.q), c.output)


def base2_exponent(c: SoftmaxConstants, x) -> tuple[int, int]:
    """Online step 1: ``t = (x * L) >> f`` (floor) and ``ceil(t / 2**rf)``."""
    t = (int(x) * c.log2e) >> c.input.frac_bits
    return t, -((-t) >> c.rf)


def online_tag_range(c: SoftmaxConstants) -> tuple[int, int]:
    """The range of the online running max ``M`` (``c`` of the smallest and largest input)."""
    return base2_exponent(c, c.input.min_int)[1], base2_exponent(c, c.input.max_int)[1]


def online_row_model(c: SoftmaxConstants, x, mask) -> np.ndarray:
    """Online steps 1-4 (``max_mode: online``): the output codes of one row."""
    e_final, total = online_pass(c, x, mask)
    return _scale(c, e_final, reciprocal(c, total))


def online_pass(c: SoftmaxConstants, x, mask) -> tuple[np.ndarray, int]:
    """Online steps 1-3, one element at a time as the hardware runs them: returns every
    ``e'`` (``e`` shifted to the final max) and the rescaled sum ``S``."""
    running = online_tag_range(c)[0]
    acc, es, tags = [0, 0], [], []
    for i, (xi, masked) in enumerate(zip(np.asarray(x).tolist(), np.asarray(mask, dtype=bool).tolist())):
        t, top = base2_exponent(c, xi)
        running = running if masked or top <= running else top
        e = 0 if masked else int(exp2_neg(c, (running << c.rf) - t))
        rescaled = 0 if i < 2 else acc[i % 2] >> (running - tags[i - 2])  # floor
        acc[i % 2] = rescaled + e
        es.append(e)
        tags.append(running)
    n = len(es)
    total = acc[(n - 1) % 2] + (acc[n % 2] >> (running - tags[n - 2]) if n > 1 else 0)  # floor
    return np.array([e >> (running - tag) for e, tag in zip(es, tags)], dtype=np.int64), total


def split_rows(x, last, n_max: int) -> list[tuple[int, int]]:
    """(start, stop) of each row of a beat stream: a row ends at ``last`` or at its
    ``n_max``-th beat, whichever comes first (a trailing row without ``last`` is open and
    left out)."""
    rows, start = [], 0
    for i, flag in enumerate(last):
        if flag or i - start + 1 == n_max:
            rows.append((start, i + 1))
            start = i + 1
    return rows


def model(cfg, rows, masks=None) -> list[np.ndarray]:
    """Bit-exact outputs of a softmax design point ``cfg`` for a list of rows."""
    c = constants_of(cfg)
    masks = masks if masks is not None else [None] * len(rows)
    return [row_model(c, x, mk) for x, mk in zip(rows, masks)]


# --------------------------------------------------------------------------- reference


def softmax_float(in_fmt: QFormat, x, mask=None) -> np.ndarray:
    """Softmax of the quantised inputs in float64; masked elements excluded and 0."""
    xf = in_fmt.to_float(x)
    live = np.ones(len(xf), dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    if not live.any():
        return np.zeros(len(xf))
    w = np.where(live, np.exp(xf - xf[live].max()), 0.0)
    return w / w.sum()


def correctly_rounded(in_fmt: QFormat, out_fmt: QFormat, x, mask=None) -> np.ndarray:
    return quantize_float(softmax_float(in_fmt, x, mask), out_fmt)


def row_metrics(cfg, x, out, mask=None) -> dict:
    """Errors of one row's outputs against the float softmax: max abs error in output LSBs,
    the row-sum error in LSBs (sum of codes minus 2**ob), KL(float || outputs) in nats
    (outputs renormalised to sum 1, a zero output counted as half an LSB), and the max error
    over the elements whose exact probability the output format can represent."""
    ref = softmax_float(cfg.input, x, mask)
    scale = 2.0 ** cfg.output.frac_bits
    out = np.asarray(out, dtype=np.int64)
    err = np.abs(out - ref * scale)
    live = ref > 0
    q = np.maximum(out[live], 0.5)
    q = q / q.sum()
    kl = float(np.sum(ref[live] * (np.log(ref[live]) - np.log(q))))
    total = int(out.sum()) - (1 << cfg.output.frac_bits) if live.any() else 0
    representable = ref * scale <= cfg.output.max_int  # leaves out a 1.0 that saturates
    return {"max_err": float(err.max()), "mean_err": float(err.mean()), "sum_err": total, "kl": kl,
            "max_err_unsaturated": float(err[representable].max()) if representable.any() else 0.0}
