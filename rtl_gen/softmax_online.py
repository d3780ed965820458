"""Online-max front of the softmax unit (``max_mode: online``): one pass over the input.

Algorithm: ``golden_models.softmax.online_row_model`` (bit for bit). Each accepted beat
(registered by the unit's input pass) flows through one free-running pipeline, one beat per
cycle, no stall (room in the e buffer and the row queues is reserved when the beat is
accepted):

``log2e``      ``u = x * L`` (a constant multiply; ``t = u >> f``, floor, is wiring)
``ceil``       ``c = ceil(t / 2**rf) = (u + (2**rf - 1) * 2**f) >> (f + rf)`` (one adder)
``max``        the running max ``M = max(M, c)`` of the unmasked beats (``M_0 = c(min)``)
               (one comparator and a multiplexer: the loop of ``M``)
``distance``   ``w = M * 2**rf - t >= 0``; the rises of the max since one and two beats back
exp2 stages    ``e`` from ``w`` (``softmax_arith.exp2_from_exponent``; a masked beat gives 0)
``rescale``    two partial sums, of the even and of the odd beats: the beat's one shifted by
               the max's rise since its last update two beats back (**floor**)
``sum``        ``+ e`` (a row's first two beats start their sums afresh): each partial sum's
               loop (shift, then add) spans two cycles
``combine_*``  at the row's end ``S = own + (other >> rise of the last beat)`` (**floor**)

It writes ``(e, M - c(min))`` (the unrounded ``e`` and its max tag, an unsigned offset) into the e buffer, and at the
row's end ``S`` into the sum queue and ``(n, M)`` into the row queue. The output pass later
shifts each ``e`` by ``M_final - tag`` (floor) and rounds it to ``es`` fraction bits (half
even): ``rescale_and_round``.

Trade-off against the row buffer: no x buffer and no separate max pass, so the first output
of a row of ``n`` comes ``n`` cycles sooner (``n + L`` instead of ``2n + L``) and one exp2
engine still serves everything; the price is a wider e buffer (the unrounded ``e`` plus the
max tag), barrel shifters in the partial sums' loops (the iCE40 critical path) and in the
output pass, two partial sums and their combine, and one bit of relative precision of every
``e`` (the integer max puts the row maximum's own ``e`` in ``(1/2, 1]``). The rescale floors
make the sum at most ``n`` units of ``2**-ef`` larger than the sum of the final ``e'`` (never
smaller); the floors on the stored ``e`` compose exactly (see the golden model). Re-reading ``x`` and recomputing exp2 at the output instead would need a
second exp2 engine (its coefficient ROM and Horner multipliers) for the same result.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned

from lowbit.golden_models.softmax import online_tag_range

from .fixed import round_half_even
from .pipeline import FreePipeline
from .softmax_arith import exp2_from_exponent


def online_stages(exp2_stages: int) -> int:
    """Front pipeline stages: log2e, ceil, max, distance, the exp2 stages after its
    ``mul_log2e``, rescale, sum, combine_shift, combine."""
    return 4 + (exp2_stages - 1) + 4


RESCALE_STAGES = 4  # output pass: amount, coarse shift, fine shift, round


def online_pass(m: Module, unit, q, beat) -> None:
    """Build the front for ``unit`` (a ``SoftmaxUnit``) on its shared storage ``q``."""
    cfg, c = unit.config, unit.constants
    f, rf = cfg.input.frac_bits, c.rf
    lo, hi = online_tag_range(c)
    tag = unsigned(unit.tag_bits)
    sum_bits = c.sum_max.bit_length()
    pipe = FreePipeline(m, beat.valid)
    riders = dict(zero=beat.masked, first=beat.first, last=beat.end, n=beat.n)
    s = pipe.stage("log2e", u=beat.x * Const(c.log2e), **riders)
    keep = lambda s, *names: {k: getattr(s, k) for k in (*names, *riders)}  # noqa: E731
    # Maxima are kept as unsigned offsets from ``lo`` (in [0, hi - lo]: plain unsigned
    # comparisons); ``t`` likewise, offset by ``lo * 2**rf``: both offsets are multiples of
    # the shifted-out unit, so the floors are unchanged.
    base = lo << (f + rf)
    top = ((s.u + (((1 << rf) - 1) << f) - base) >> (f + rf))[:unit.tag_bits]  # in [0, hi - lo]
    # a masked beat's candidate is the lowest max, which never wins
    s = pipe.stage("ceil", top=Mux(s.zero, 0, top), t=(s.u - base) >> f, **keep(s))

    # the running max: a register loaded with the beat's candidate when it starts a row or
    # exceeds the max; its loop holds one comparator (a carry chain) and the load enable.
    # The rises of the max are taken a stage later, from registers.
    running = Signal(tag)
    with m.If(pipe.valid & (s.first | (s.top > running))):
        m.d.sync += running.eq(s.top)
    s = pipe.stage("max", previous=Mux(s.first, 0, running), **keep(s, "t"))
    w_bits = ((hi << rf) - ((cfg.input.min_int * c.log2e) >> f)).bit_length()  # the largest w
    # the max two beats back (the last update of this beat's accumulator, see below)
    back1, back2 = Signal(tag), Signal(tag)
    with m.If(pipe.valid):
        m.d.sync += [back1.eq(running), back2.eq(back1)]
    s = pipe.stage("distance", w=((running << rf) - s.t).as_unsigned()[:w_bits], tag=running,
                   delta2=(running - back2).as_unsigned()[:unit.tag_bits],
                   delta1=(running - s.previous).as_unsigned()[:unit.tag_bits],
                   odd=~s.n[0], restart=s.n <= 2, **keep(s))
    names = ("first", "last", "n", "tag", "delta1", "delta2", "odd", "restart")
    e, r = exp2_from_exponent(m, pipe, c, s.w, s.zero, **{k: getattr(s, k) for k in names})

    # Two accumulators (even / odd beats of the row) so each one's loop (shift, then add)
    # spans two cycles: ``rescale`` shifts the beat's accumulator by the rise of the max since
    # its last update (two beats back), ``sum`` adds e (a row's first beat clears the other).
    acc = [Signal(sum_bits, name="sum_even"), Signal(sum_bits, name="sum_odd")]
    mine = Mux(r["odd"], acc[1], acc[0])
    s = pipe.stage("rescale", shifted=Mux(r["restart"], 0, shift_floor(mine, r["delta2"])), e=e,
                   **{k: r[k] for k in ("first", "last", "n", "tag", "delta1", "odd")})
    own = s.shifted + s.e
    with m.If(pipe.valid):
        for k, accumulator in enumerate(acc):
            with m.If(s.odd == k):
                m.d.sync += accumulator.eq(own)
            with m.Elif(s.first):
                m.d.sync += accumulator.eq(0)
    # at a row's end: S = own + (other >> rise of the last beat) (its last update was one back)
    s = pipe.stage("sum", own=own, other=Mux(s.first, 0, Mux(s.odd, acc[0], acc[1])), delta1=s.delta1,
                   e=s.e, last=s.last, n=s.n, tag=s.tag)
    e_wp = Signal(range(unit.e_depth))
    m.d.comb += [q.e_write.en.eq(pipe.valid), q.e_write.addr.eq(e_wp), q.e_write.data.eq(Cat(s.e, s.tag)),
                 q.lengths.w_en.eq(pipe.valid & s.last), q.lengths.w_data.eq(Cat(s.n, s.tag))]
    m.d.sync += e_wp.eq(e_wp + pipe.valid)
    s = pipe.stage("combine_shift", own=s.own, other=shift_floor(s.other, s.delta1), last=s.last)
    s = pipe.stage("combine", total=(s.own + s.other)[:sum_bits], last=s.last)
    assert pipe.stages == unit.exp_stages
    m.d.comb += [q.sums.w_en.eq(pipe.valid & s.last), q.sums.w_data.eq(s.total)]
    assert lo <= hi


def shift_floor(value, amount):
    """``value >> amount`` (**floor**) for an unsigned ``value``; only the low bits of
    ``amount`` that can matter reach the barrel shifter, the rest just zero the result."""
    bits = len(value).bit_length()
    if len(amount) <= bits:
        return value >> amount
    return Mux(amount[bits:].any(), 0, value >> amount[:bits])


def rescale_and_round(pipe, c, word, row_max, **riders):
    """Output-pass stages of the online mode: ``e' = e >> (row_max - tag)`` (**floor**; a
    barrel shift by the multiple of 8, then by the rest), then ``e_s = round_half_even(e',
    ef - es)``. ``word`` is an e-buffer word ``(e, tag)``. Returns ``(e_s, riders)``."""
    e_bits = c.e_max.bit_length()
    names = list(riders)
    tag = word[e_bits:]
    s = pipe.stage("rescale_amount", e=word[:e_bits], amount=(row_max - tag).as_unsigned()[:len(tag)], **riders)
    s = pipe.stage("rescale_coarse", e=s.e >> Cat(Const(0, 3), s.amount[3:]), fine=s.amount[:3],
                   **{n: getattr(s, n) for n in names})
    s = pipe.stage("rescale", e=s.e >> s.fine, **{n: getattr(s, n) for n in names})
    e_s_bits = e_bits - (c.ef - c.es) + 1
    s = pipe.stage("rescale_round", e_s=round_half_even(s.e, c.ef - c.es)[:e_s_bits],
                   **{n: getattr(s, n) for n in names})
    return s.e_s, {n: getattr(s, n) for n in names}
