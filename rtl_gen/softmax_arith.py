"""Arithmetic pieces of the softmax unit: the base-2 exponential pipeline, the reciprocal,
the exact row sums, the split product and rounding.

All follow ``golden_models.softmax`` bit for bit (steps 2-4, 5 and 6 there). The pipelines
are built on ``rtl_gen.pipeline.FreePipeline`` (one register rank per stage, no enables).

``exp2_pipeline`` — ``e = 2**-(d * log2(e))`` in units of ``2**-ef`` for a distance ``d >= 0``
from the row maximum. Stages (each one register, at most one carry chain or multiplier):
``mul_log2e`` (``z = (d * L) >> f``), ``split`` (``k = min(z >> rf, ef + 1)``, ``k_max`` for
a masked element, fraction offset ``u``; the coefficient ROM row of segment
``r >> seg_log2`` arrives with this stage, ``FreePipeline.rom``), two per Horner step
(``mul``, ``add``), ``scale_coarse`` and ``scale`` (``e = (v << (ef - hf)) >> k``, a barrel
shift by the multiple of 8 in ``k``, then by the rest). Latency ``exp2_stages(constants)``.

``SequentialReciprocal`` — ``R = floor(2**(hf + ob + g) / D)`` with ``D = S >> (ef - hf)``
by non-restoring division, one quotient bit per two cycles (its docstring); ``D = 0``
gives all ones, as the golden model says.

``row_sums`` — exact row sums from a running total in chunk accumulators (no restart
multiplexer); ``pipelined_product`` — a product in DSP-sized parts with split cross adds;
``round_half_even_split`` — round half to even with an OR-tree carry and a split add.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
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
    seg_bits = c.rf - c.seg_log2
    word = pipe.rom("exp2_coefficients", rows, sum(widths), z[c.seg_log2:c.rf] if seg_bits else Const(0, 1))
    whole = z >> c.rf
    names = list(riders)
    # a masked element shifts by k_max, which gives e = 0 (so the shifts need no clear)
    s = pipe.stage("split", k=Mux(zero | (whole > c.k_max), c.k_max, whole), zero=zero,
                   u=z[:c.seg_log2] if c.seg_log2 else Const(0, 1), **riders)
    coef = [word[offsets[k]:offsets[k] + widths[k]].as_signed() for k in range(c.order + 1)]
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
    assert v_bits + c.ef - c.hf <= c.k_max, "a shift by k_max must clear every e (masked elements)"
    # the barrel shift in two stages: by the multiple of 8 in k, then by the rest
    s = pipe.stage("scale_coarse", coarse=scaled >> Cat(Const(0, 3), s.k[3:]), fine=s.k[:3],
                   **{n: getattr(s, n) for n in names})
    s = pipe.stage("scale", e=(s.coarse >> s.fine)[:c.e_max.bit_length()],
                   **{n: getattr(s, n) for n in names})
    return s.e, {n: getattr(s, n) for n in names}


class SequentialReciprocal(wiring.Component):
    """``R = floor(2**numerator_log2 / (S >> divisor_shift))`` in ``2 QB + 2`` cycles per sum.

    Algorithm: non-restoring division, one quotient bit per two cycles. The partial
    remainder ``s`` (``W = DW + 2`` bits, two's complement, ``DW`` the divisor's width)
    starts at ``H = 2**(numerator_log2 - QB) < D``; each step makes ``s' = 2s - D`` if
    ``s >= 0`` else ``2s + D`` and records the quotient bit ``s' >= 0``: the same bits as
    restoring division (a negative ``s`` stands for the restored ``s + D``, and ``2(s + D)
    - D = 2s + D``), with no restore multiplexer. The add is split in two chunks of at
    most ``ceil(W / 2)`` bits: phase A adds the low chunk and, beside it, the high chunk for
    both values of the low chunk's carry (carry select), all from registers (the operand
    ``D`` or ``~D`` is registered); phase B picks the high chunk by the registered carry,
    which gives the sign that chooses the next step's operand (one LUT level). ``D = 0``
    gives all ones (the golden model's rule).

    Ports: ``start`` (In 1, only while ``idle``): take ``sum`` (In ``sum_max`` bits) this
    cycle; ``idle`` (Out 1, a register); ``done`` (Out 1, a register): ``quotient`` (Out
    ``QB``, registers) holds ``R`` (in the cycle of ``done`` and until the next start).
    Timing: ``done`` rises ``2 QB + 2`` cycles after ``start``; ``idle`` with it.
    """

    def __init__(self, c: SoftmaxConstants):
        self.c = c
        self.sum_bits = c.sum_max.bit_length()
        super().__init__({"start": In(1), "sum": In(self.sum_bits), "idle": Out(1, init=1),
                          "done": Out(1), "quotient": Out(c.qb)})

    def elaborate(self, platform):
        m, c = Module(), self.c
        dw = c.divisor_max.bit_length()
        width = dw + 2
        low = -(-width // 2)
        den = Signal(dw, reset_less=True)
        den_zero = Signal(reset_less=True)
        s_lo, s_hi = Signal(low, reset_less=True), Signal(width - low, reset_less=True)
        # the operand of the next step (D if s < 0, else ~D with a carry-in of 1), registered
        op, cin = Signal(width, reset_less=True), Signal(reset_less=True)
        carry = Signal(reset_less=True)
        hi0, hi1 = Signal(width - low, reset_less=True), Signal(width - low, reset_less=True)
        # the quotient bits shift in below a marker set at the start: the marker reaching bit
        # QB - 1 flags the last step (no step counter)
        quot = Signal(c.qb + 1, reset_less=True)
        phase = Signal(reset_less=True)
        start = 1 << (c.numerator_log2 - c.qb)
        assert start < c.e_zero >> c.divisor_shift, "the first partial remainder must be below every divisor"
        d = Cat(den, Const(0, width - dw))
        # D = 0, over two registered levels (den holds during a division; the flag is read
        # at its end): an OR per 4 bits, then their NOR
        parts = [Signal(name=f"den_any{j}", reset_less=True) for j in range(-(-dw // 4))]
        m.d.sync += [part.eq(den[4 * j:4 * j + 4].any()) for j, part in enumerate(parts)]
        m.d.sync += den_zero.eq(~Cat(*parts).any())
        m.d.comb += self.quotient.eq(quot[:c.qb] | Mux(den_zero, (1 << c.qb) - 1, 0))
        # the state: ``idle``; ``begin`` (a register: the cycle after ``start``, D is in
        # ``den``); ``run`` with ``phase``. Every enable below reads registers only.
        begin, run = Signal(), Signal()
        step_a, step_b = run & ~phase, run & phase
        last_step = step_b & quot[c.qb - 1]
        m.d.sync += [begin.eq(self.start), self.done.eq(last_step), phase.eq(run & ~phase),
                     run.eq(begin | (run & ~last_step)),
                     self.idle.eq(Mux(self.start, 0, self.idle | last_step))]
        with m.If(self.start):
            m.d.sync += den.eq(self.sum >> c.divisor_shift)
        with m.If(begin):
            m.d.sync += [op.eq(~d), cin.eq(1), s_lo.eq(start & ((1 << low) - 1)), s_hi.eq(start >> low),
                         quot.eq(1)]
        with m.If(step_a):
            # A: the low chunk of 2s + op + cin, and the high chunk for either carry out of it
            # (carry select): three chains of registered operands, nothing in front of them
            total = Cat(Const(0, 1), s_lo[:-1]) + op[:low] + cin
            shifted = Cat(s_lo[-1], s_hi[:-1])
            m.d.sync += [s_lo.eq(total[:low]), carry.eq(total[low]),
                         hi0.eq(shifted + op[low:]), hi1.eq(shifted + op[low:] + 1)]
        with m.If(step_b):
            # B: the carry selects the high chunk; its top bit is the sign, which chooses the
            # next operand (one LUT per bit: carry, the two top bits and a bit of D)
            high = Mux(carry, hi1, hi0)
            negative = high[-1]
            m.d.sync += [s_hi.eq(high), quot.eq(Cat(~negative, quot[:-1])),
                         op.eq(Mux(negative, d, ~d)), cin.eq(~negative)]
        return m


def row_sum_stages(width: int, chunk: int) -> int:
    """Pipeline stages of ``row_sums``: the input register, ``K + 1`` for the running total
    in ``K`` chunks, then ``K`` for the difference."""
    k = -(-width // chunk)
    return 2 * k + 2


def row_sums(pipe, e, last, width: int, chunk: int):
    """Exact row sums of a stream of ``e`` (zero on every cycle without a beat), rows
    ending where ``last`` is set on a beat. Returns ``(total, end)``: ``end`` marks the
    stage holding a row's ``total`` (the stage's valid bit and its ``last``).

    Algorithm: one running total of every ``e`` that never restarts (``width`` bits,
    modulo ``2**width``; a row's true sum fits), kept in ``K = ceil(width / chunk)``
    chunk accumulators, chunk ``j`` a cycle behind chunk ``j - 1`` and adding its
    registered carry: each accumulator loop is one ``chunk + 1``-bit adder with no
    multiplexer and no enable. At a row's end the total is snapshot and the row's sum is
    the difference from the previous row's snapshot (``FreePipeline.add``, split the same
    way). Latency: ``row_sum_stages(width, chunk)`` stages."""
    e = Value.cast(e)
    bounds = [(lo, min(width, lo + chunk)) for lo in range(0, width, chunk)]
    # e enters through a register with a reset (no value left from before a reset reaches
    # the accumulator loops, which add every cycle), zero on a cycle without a beat
    e = pipe.reg(Mux(pipe.valid, e, 0), "e_row_in", reset_less=False)  # beside the stage below
    s = pipe.stage("row_in", last=last)
    last = s.last
    pieces = [e[lo:hi] if lo < len(e) else Const(0, 1) for lo, hi in bounds]
    carry, done = None, []
    for j, (lo, hi) in enumerate(bounds):
        acc = Signal(hi - lo, name=f"row_total{j}")
        step = acc + pieces[j] + (carry if carry is not None else 0)
        pipe.m.d.sync += acc.eq(step[:hi - lo])
        s = pipe.stage(f"row_total{j}", last=last, **{f"done{k}": d for k, d in enumerate(done)})
        # what the accumulator loops read (the carry, the later chunks of e) has a reset: the
        # loops add it every cycle, so a value left from before a reset must not reach them
        carry = pipe.reg(step[hi - lo], f"carry_row_total{j}", reset_less=False)
        pieces[j + 1:] = [pipe.reg(piece, f"e{k}_row_total{j}", reset_less=False)
                          for k, piece in enumerate(pieces[j + 1:], j + 1)]
        done = [getattr(s, f"done{k}") for k in range(len(done))] + [acc]
        last = s.last
    s = pipe.stage("row_snapshot", last=last, **{f"done{k}": d for k, d in enumerate(done)})
    snapshot = Cat(*(getattr(s, f"done{k}") for k in range(len(done))))
    end = pipe.valid & s.last
    previous = Signal(width, name="row_previous")
    with pipe.m.If(end):
        pipe.m.d.sync += previous.eq(snapshot)
    # the end flag rides as data (no reset): the valid bits, which have one, qualify it
    total, r = pipe.add("row_difference", snapshot, ~previous, width, chunk, carry_in=1, last=s.last)
    return total, pipe.valid & r["last"]


DSP_WIDTH = 16   # operand width of the iCE40 / ECP5 multiplier blocks (SB_MAC16, MULT18X18D)
DSP_MIN_PRODUCT = 11  # narrower products are built in fabric by Yosys (iCE40 DSP_Y_MINWIDTH)


def _product_split(a_bits: int, b_bits: int) -> int:
    """The chunk ``C`` of ``pipelined_product``: the widest up to ``DSP_WIDTH`` whose
    high-by-high product is still wide enough for a DSP block."""
    for chunk in range(DSP_WIDTH, 0, -1):
        if (a_bits - chunk) + (b_bits - chunk) >= DSP_MIN_PRODUCT or chunk <= max(a_bits, b_bits) // 2:
            return chunk
    return DSP_WIDTH


def product_stages(a_bits: int, b_bits: int, add_chunk: int = 12) -> int:
    """Pipeline stages of ``pipelined_product`` for operands of these widths."""
    if max(a_bits, b_bits) <= DSP_WIDTH:
        return 1
    chunk = _product_split(a_bits, b_bits)
    upper = a_bits + b_bits - chunk
    return 1 + 2 * -(-upper // add_chunk)


def pipelined_product(pipe, a, b, name: str, add_chunk: int = 12, **riders):
    """``a * b`` (unsigned, each at most ``2 * DSP_WIDTH`` bits) with no stage holding more
    than one DSP-sized multiplier or a carry chain longer than ``add_chunk`` bits: one stage
    when both fit a DSP block, else the four chunk products (``C = _product_split``, so
    each maps to a DSP block with its output register), then ``outer = low + high << 2C``
    (a concatenation) plus each cross product ``<< C`` by a split adder
    (``FreePipeline.add``, only the bits above ``C``). Stages: ``product_stages``.
    Returns ``(product, riders)``."""
    names = list(riders)
    if max(len(a), len(b)) <= DSP_WIDTH:
        s = pipe.stage(name, product=a * b, **riders)
        return s.product, {n: getattr(s, n) for n in names}
    chunk = _product_split(len(a), len(b))
    assert max(len(a), len(b)) <= 2 * chunk
    width = len(a) + len(b)
    a_lo, a_hi, b_lo, b_hi = a[:chunk], a[chunk:], b[:chunk], b[chunk:]
    s = pipe.stage(f"{name}_parts", low=a_lo * b_lo, high=a_hi * b_hi, cross0=a_lo * b_hi,
                   cross1=a_hi * b_lo, **riders)
    outer = Cat(s.low[:2 * chunk], s.high)
    upper, r = pipe.add(f"{name}_cross0", outer[chunk:width], s.cross0, width - chunk, add_chunk,
                        bottom=outer[:chunk], cross1=s.cross1, **{n: getattr(s, n) for n in names})
    upper, r = pipe.add(f"{name}_cross1", upper, r["cross1"], width - chunk, add_chunk,
                        bottom=r["bottom"], **{n: r[n] for n in names})
    return Cat(r["bottom"], upper), {n: r[n] for n in names}


def round_half_even_split(pipe, value, shift: int, name: str, chunk: int = 12, **riders):
    """``fixed.round_half_even(value, shift)`` for an unsigned ``value`` with no stage
    holding a carry chain longer than ``chunk`` bits: first the rounding carry of the low
    ``shift`` bits (their top bit and, below it, any bit set or the integer part odd: an
    OR tree, no carry chain), then the high part plus that carry
    (``FreePipeline.add``, ``chunk`` bits per stage). Stages: ``1 + add_stages(len(value)
    - shift + 1, chunk)``. Returns ``(rounded, riders)``."""
    names = list(riders)
    assert shift >= 1 and not value.shape().signed
    # the rounding carry, with no carry chain: the fraction is above one half, or exactly
    # one half and the integer part odd
    rest = value[:shift - 1].any() if shift > 1 else Const(0, 1)
    s = pipe.stage(f"{name}_carry", high=value[shift:], carry=value[shift - 1] & (rest | value[shift]),
                   **riders)
    rounded, r = pipe.add(f"{name}_add", s.high, s.carry, len(s.high) + 1, chunk,
                          **{n: getattr(s, n) for n in names})
    return rounded, r


def round_stages(bits: int, shift: int, chunk: int = 12) -> int:
    """Stages of ``round_half_even_split`` for a ``bits``-bit value."""
    return 1 + -(-(bits - shift + 1) // chunk)


def at_most(a, b):
    """``a <= b`` for unsigned values of one width, as the top sum bit of ``a + ~b`` with
    the operands padded by 1 and 0 (``1 + 0 + carry``): the comparison leaves the carry
    chain as a sum bit, which the flip-flop registering it shares a logic cell with (a
    bare carry out would need another cell and a route)."""
    width = len(a)
    return (Cat(a, Const(1, 1)) + Cat(~b, Const(0, 1)))[width]
