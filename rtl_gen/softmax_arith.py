"""Arithmetic pieces of the softmax unit: the base-2 exponential pipeline and the reciprocal.

Both follow ``golden_models.softmax`` bit for bit (steps 2-4 and step 6 there).

``exp2_pipeline`` — ``e = 2**-(d * log2(e))`` in units of ``2**-ef`` for a distance ``d >= 0``
from the row maximum. Stages (each one register, at most one carry chain or multiplier):
``mul_log2e`` (``z = (d * L) >> f``), ``split`` (``k = min(z >> rf, ef + 1)``, fraction offset
``u``; the coefficient ROM row of segment ``r >> seg_log2`` arrives with this stage), two per
Horner step (``mul``, ``add``), ``scale_coarse`` and ``scale`` (``e = (v << (ef - hf)) >> k``,
a barrel shift by the multiple of 8 in ``k``, then by the rest; ``zero`` forces ``e = 0`` for
masked elements). Latency ``exp2_stages(constants)``.

``SequentialReciprocal`` — ``R = floor(2**(hf + ob + g) / D)`` with ``D = S >> (ef - hf)``
by restoring division, one quotient bit per cycle (one ``DW + 1``-bit subtractor, ``DW``
the divisor's width): a sum accepted on ``i`` gives its ``R`` on ``o`` ``QB`` cycles later.
``D = 0`` gives all ones, as the golden model says.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.fixedpoint import signed_width
from lowbit.golden_models.softmax import SoftmaxConstants


def exp2_stages(c: SoftmaxConstants) -> int:
    return 4 + 2 * c.order


def exp2_pipeline(m: Module, pipe, c: SoftmaxConstants, d, zero, **riders):
    """Append the exp2 stages to ``pipe``; returns ``(e, riders)`` (registered)."""
    s = pipe.stage("mul_log2e", z=(d * Const(c.log2e)) >> c.input.frac_bits, zero=zero, **riders)
    return exp2_from_exponent(m, pipe, c, s.z, s.zero, **{n: getattr(s, n) for n in riders})


def exp2_from_exponent(m: Module, pipe, c: SoftmaxConstants, z, zero, **riders):
    """The exp2 stages after ``mul_log2e`` (``exp2_stages(c) - 1`` of them) for a registered
    base-2 exponent ``z >= 0`` (units ``2**-rf``); returns ``(e, riders)`` (registered)."""
    widths = [signed_width(min(row[k] for row in c.coefs), max(row[k] for row in c.coefs))
              for k in range(c.order + 1)]
    offsets = [sum(widths[:k]) for k in range(c.order + 1)]
    rows = [sum((v & ((1 << w) - 1)) << o for v, w, o in zip(row, widths, offsets)) for row in c.coefs]
    m.submodules.exp2_coefficients = rom = Memory(shape=sum(widths), depth=len(rows), init=rows)
    read = rom.read_port()
    seg_bits = c.rf - c.seg_log2
    m.d.comb += [read.en.eq(pipe.advance), read.addr.eq(z[c.seg_log2:c.rf] if seg_bits else 0)]
    whole = z >> c.rf
    names = list(riders)
    s = pipe.stage("split", k=Mux(whole > c.k_max, c.k_max, whole), zero=zero,
                   u=z[:c.seg_log2] if c.seg_log2 else Const(0, 1), **riders)
    coef = [read.data[offsets[k]:offsets[k] + widths[k]].as_signed() for k in range(c.order + 1)]
    value = coef[c.order]
    for k in range(c.order - 1, -1, -1):
        keep = dict(k=s.k, zero=s.zero, u=s.u, **{n: getattr(s, n) for n in names})
        s = pipe.stage(f"mul{k}", product=value * s.u, **keep,
                       **{f"c{j}": cj for j, cj in enumerate(coef[:k + 1])})
        coef = [getattr(s, f"c{j}") for j in range(k + 1)]
        keep = dict(k=s.k, zero=s.zero, u=s.u, **{n: getattr(s, n) for n in names})
        s = pipe.stage(f"add{k}", value=coef[k] + (s.product >> c.seg_log2), **keep,
                       **{f"c{j}": cj for j, cj in enumerate(coef[:k])})
        coef, value = [getattr(s, f"c{j}") for j in range(k)], s.value
    v_bits = (c.e_max >> (c.ef - c.hf)).bit_length()
    scaled = value.as_unsigned()[:v_bits] << (c.ef - c.hf)
    # the barrel shift in two stages: by the multiple of 8 in k, then by the rest
    s = pipe.stage("scale_coarse", coarse=Mux(s.zero, 0, scaled >> Cat(Const(0, 3), s.k[3:])), fine=s.k[:3],
                   **{n: getattr(s, n) for n in names})
    s = pipe.stage("scale", e=(s.coarse >> s.fine)[:c.e_max.bit_length()],
                   **{n: getattr(s, n) for n in names})
    return s.e, {n: getattr(s, n) for n in names}


class SequentialReciprocal(wiring.Component):
    """``R = floor(2**numerator_log2 / (S >> divisor_shift))`` in ``QB`` cycles per sum.

    ``i``: stream of sums ``S`` (``sum_max.bit_length()`` bits); ``o``: stream of ``R``
    (``QB`` bits). One division at a time; ``i.ready`` is high when idle.
    """

    def __init__(self, c: SoftmaxConstants):
        self.c = c
        self.sum_bits = c.sum_max.bit_length()
        super().__init__({"i": In(stream.Signature(self.sum_bits)), "o": Out(stream.Signature(c.qb))})

    def elaborate(self, platform):
        m, c = Module(), self.c
        busy = Signal()
        den = Signal(c.divisor_max.bit_length())
        rem = Signal(len(den) + 1)
        quot = Signal(c.qb)
        step = Signal(range(c.qb + 1))
        # N = 2**numerator_log2 = H * 2**QB with H = 2**(hf - 2) < D: start from H, then
        # bring down QB zero bits, subtracting D wherever it fits.
        start = 1 << (c.numerator_log2 - c.qb)
        assert start < c.e_zero >> c.divisor_shift, "the first partial remainder must be below every divisor"
        # Two cycles per quotient bit: ``trial`` registers the subtraction (the only carry
        # chain), ``select`` keeps or drops it (a multiplexer).
        trial = Signal()
        difference = Signal(len(rem) + 1)  # (rem << 1) - D; its top bit is the borrow
        fits = ~difference[-1]
        m.d.comb += [self.i.ready.eq(~busy & ~self.o.valid), self.o.payload.eq(quot)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), den.eq(self.i.payload >> c.divisor_shift), rem.eq(start),
                         quot.eq(0), step.eq(c.qb), trial.eq(1)]
        with m.Elif(busy & trial):
            m.d.sync += [difference.eq((rem << 1) - den), trial.eq(0)]
        with m.Elif(busy):
            m.d.sync += [rem.eq(Mux(fits, difference, rem << 1)), quot.eq((quot << 1) | fits),
                         step.eq(step - 1), trial.eq(1)]
            with m.If(step == 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
        return m


def product_stages(a_bits: int, b_bits: int, chunk: int = 16) -> int:
    """Pipeline stages of ``pipelined_product`` for operands of these widths."""
    return 1 if max(a_bits, b_bits) <= chunk else 3


def pipelined_product(pipe, a, b, name: str, chunk: int = 16, **riders):
    """``a * b`` (unsigned, each at most ``2 * chunk`` bits) with no stage holding more than
    one ``chunk x chunk`` multiplier or one carry chain: one stage when both fit ``chunk``
    bits (a DSP block), else three: the four chunk products; the two middle ones added
    (the outer two are concatenated, they cannot overlap); the middle sum added in.
    Returns ``(product, riders)``."""
    names = list(riders)
    if max(len(a), len(b)) <= chunk:
        s = pipe.stage(name, product=a * b, **riders)
        return s.product, {n: getattr(s, n) for n in names}
    assert max(len(a), len(b)) <= 2 * chunk
    a_lo, a_hi, b_lo, b_hi = a[:chunk], a[chunk:], b[:chunk], b[chunk:]
    s = pipe.stage(f"{name}_parts", low=a_lo * b_lo, high=a_hi * b_hi, cross0=a_lo * b_hi,
                   cross1=a_hi * b_lo, **riders)
    s = pipe.stage(f"{name}_cross", outer=Cat(s.low[:2 * chunk], s.high), cross=s.cross0 + s.cross1,
                   **{n: getattr(s, n) for n in names})
    s = pipe.stage(f"{name}_sum", product=Cat(s.outer[:chunk], s.outer[chunk:] + s.cross),
                   **{n: getattr(s, n) for n in names})
    return s.product, {n: getattr(s, n) for n in names}


def round_half_even_split(pipe, value, shift: int, name: str, **riders):
    """``fixed.round_half_even(value, shift)`` for an unsigned ``value`` in two stages, so no
    stage holds a carry chain longer than ``max(shift, len(value) - shift) + 1`` bits: first
    the rounding carry of the low ``shift`` bits (``(low + 2**(shift-1) - 1 + value[shift])
    >> shift``, ``value[shift]`` entering as carry-in), then the high part plus that carry.
    Returns ``(rounded, riders)``."""
    names = list(riders)
    assert shift >= 1 and not value.shape().signed
    s = pipe.stage(f"{name}_carry", high=value[shift:],
                   carry=(Cat(value[shift], value[:shift]) + (((1 << (shift - 1)) - 1) << 1 | 1)) >> (shift + 1),
                   **riders)
    s = pipe.stage(f"{name}_add", rounded=s.high + s.carry, **{n: getattr(s, n) for n in names})
    return s.rounded, {n: getattr(s, n) for n in names}
