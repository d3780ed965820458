"""Online-max front of the softmax unit (``max_mode: online``): one pass over the input.

Algorithm: ``golden_models.softmax.online_row_model`` (bit for bit). Each accepted beat
(registered by the unit's input pass) flows through one free-running pipeline, one beat per
cycle, no stall (room in the e buffer and the row queues is reserved when the beat is
accepted):

``log2e``      ``u = x * L`` (a constant multiply; ``t = u >> f``, floor, is wiring)
``ceil``       ``c = ceil(t / 2**rf) = (u + (2**rf - 1) * 2**f) >> (f + rf)`` (one adder)
``pair*``      ``max(c_{i-1}, c)`` of the beat and the row's previous one (a comparator,
               registered; then a multiplexer)
``max*``       the running max ``M = max(M, c)`` of the unmasked beats (``M_0 = c(min)``; a
               masked beat's ``c`` is the lowest): two partial maxima ``R`` of the even and odd
               beats, ``M_i = max(R, max(c_{i-1}, c_i))``, so each one's loop (compare,
               registered; then the load) spans two cycles
``distance``   ``w = M * 2**rf - t >= 0``; the rises of ``M >> 3`` since one and two beats back
exp2 stages    ``e`` from ``w`` (``softmax_arith.exp2_from_exponent``; a masked beat gives 0)
``align``      ``e << (M & 7)`` (the fine part of the max, outside the sums' loop); the
               rises in bytes (``M >> 3``) since one and two beats back, decoded to a
               2-bit byte shift and a clear flag (registered)
``rescale``    two partial sums, of the even and of the odd beats, each kept as
               ``Z = floor(Y / 2**(8 * (M >> 3)))``, ``Y = sum_j e_j * 2**M_j`` (so the golden
               model's ``A = Z >> (M & 7)``, **floor**: floors of shifts compose, and adding a
               multiple of ``2**k`` commutes with ``>> k``): the beat's ``Z`` shifted by its
               byte rise since its last update two beats back (a 4:1 byte multiplexer and the
               clear; **floor**)
``sum``        ``Z + (e << (M & 7))`` (a row's first two beats start afresh) in carry-select
               form (low half, high half and high half + 1, the low half's carry; the choice
               is the first level of the next shift): each partial sum's loop (byte shift,
               then a half-width add) spans two cycles
``combine_*``  at the row's end ``S = (Z_own >> fine) + ((Z_other >> bytes of the last
               rise) >> fine)`` (**floor**: pick, byte shift, fine shift, then a split add)

It writes ``(e, M - c(min))`` (the unrounded ``e`` and its max tag, an unsigned offset) into the e buffer, and at the
row's end ``S`` into the sum queue and ``(n, M)`` into the row queue. The output pass later
shifts each ``e`` by ``M_final - tag`` (floor) and rounds it to ``es`` fraction bits (half
even): ``rescale_and_round``.

Trade-off against the row buffer: no x buffer and no separate max pass, so the first output
of a row of ``n`` comes ``n`` cycles sooner (``n + L`` instead of ``2n + L``) and one exp2
engine still serves everything; the price is a wider e buffer (the unrounded ``e`` plus the
max tag), byte shifters in the partial sums' loops (31-bit at Q5.2) and barrel shifters in the
output pass, two partial sums and their combine, and one bit of relative precision of every
``e`` (the integer max puts the row maximum's own ``e`` in ``(1/2, 1]``). The rescale floors
make the sum at most ``n`` units of ``2**-ef`` larger than the sum of the final ``e'`` (never
smaller); the floors on the stored ``e`` compose exactly (see the golden model). Re-reading ``x`` and recomputing exp2 at the output instead would need a
second exp2 engine (its coefficient ROM and Horner multipliers) for the same result.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned

from lowbit.golden_models.softmax import online_tag_range

from .pipeline import FreePipeline
from .softmax_arith import at_most, exp2_from_exponent, round_half_even_split, round_stages


FINE_BITS = 3      # the partial sums shift by whole bytes in their loop; the rest of a rise outside it
COMBINE_CHUNK = 12  # the row end's final add, split in chunks (``FreePipeline.add``)


def online_stages(exp2_stages: int, sum_bits: int) -> int:
    """Front pipeline stages: log2e, ceil, pair_compare, pair, max_compare, max, distance, the exp2 stages after its
    ``mul_log2e``, align, rescale, sum, combine_pick, combine_coarse, combine_shift and the
    combine add (``FreePipeline.add_stages``)."""
    return 7 + (exp2_stages - 1) + 6 + FreePipeline.add_stages(sum_bits, COMBINE_CHUNK)


ROUND_CHUNK = 13  # the output pass's rounding add (one stage at Q5.2: 13 bits)


def rescale_stages(c) -> int:
    """Output-pass stages of the online mode: amount, coarse shift, fine shift, the split
    rounding (``softmax_arith.round_stages``) and a hold register before the product's DSP."""
    return 3 + round_stages(c.e_max.bit_length(), c.ef - c.es, ROUND_CHUNK) + 1


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

    # the running max M_i = max(c_j, j <= i) of the row in two partial maxima, of the even
    # and of the odd beats (R_p = M of the beat's last same-parity predecessor), so each loop
    # (a comparator of registers, registered; then the load enable) spans two cycles:
    # M_i = max(R_p, max(c_{i-1}, c_i)); a row's first two beats start afresh.
    last_c = Signal(tag)
    with m.If(pipe.valid):
        m.d.sync += last_c.eq(s.top)
    s = pipe.stage("pair_compare", top=s.top, before=last_c, not_above=at_most(s.top, last_c),
                   restart=s.n <= 2, parity=~s.n[0], **keep(s, "t"))
    extra = dict(restart=s.restart, parity=s.parity)
    s = pipe.stage("pair", pair=Mux(s.first | ~s.not_above, s.top, s.before), **extra, **keep(s, "t"))
    best = [Signal(tag, name=f"running_max{k}") for k in range(2)]
    extra = dict(restart=s.restart, parity=s.parity)
    s = pipe.stage("max_compare", pair=s.pair, **{f"not_above{k}": at_most(s.pair, r) for k, r in enumerate(best)},
                   **extra, **keep(s, "t"))
    for k, r in enumerate(best):
        with m.If(pipe.valid & (s.parity == k) & (s.restart | ~getattr(s, f"not_above{k}"))):
            m.d.sync += r.eq(s.pair)
    take = s.restart | ~Mux(s.parity, s.not_above1, s.not_above0)
    s = pipe.stage("max", running=Mux(take, s.pair, Mux(s.parity, best[1], best[0])), **keep(s, "t"))
    running = s.running
    w_bits = ((hi << rf) - ((cfg.input.min_int * c.log2e) >> f)).bit_length()  # the largest w
    # the max one and two beats back (the last updates of this beat's partial sums, below)
    back1, back2 = Signal(tag), Signal(tag)
    with m.If(pipe.valid):
        m.d.sync += [back1.eq(running), back2.eq(back1)]
    coarse = lambda v: v[FINE_BITS:] if len(v) > FINE_BITS else Const(0, 1)  # noqa: E731
    s = pipe.stage("distance", w=((running << rf) - s.t).as_unsigned()[:w_bits], tag=running,
                   coarse2=(coarse(running) - coarse(back2)).as_unsigned()[:len(coarse(running))],
                   coarse1=(coarse(running) - coarse(back1)).as_unsigned()[:len(coarse(running))],
                   odd=~s.n[0], restart=s.n <= 2, **keep(s))
    names = ("first", "last", "n", "tag", "coarse1", "coarse2", "odd", "restart")
    e, r = exp2_from_exponent(m, pipe, c, s.w, s.zero, **{k: getattr(s, k) for k in names})

    # The two partial sums (even / odd beats) are kept as ``Z = floor(Y / 2**(8 * (M >> 3)))``
    # with ``Y = sum_j e_j * 2**M_j`` over the beats so far: ``A = Z >> (M & 7)`` is the golden
    # model's partial sum (floors of shifts compose and adding multiples of ``2**k`` commutes
    # with ``>> k``), so the loop shifts by whole bytes only and ``e`` enters pre-shifted by
    # the fine part (``align``, outside the loop). ``Z`` is stored carry-select: ``lo``, ``hi``
    # and ``hi + 1`` with ``lo``'s carry, the choice made by the next shift.
    z_bits = sum_bits + (1 << FINE_BITS) - 1
    split = -(-z_bits // 2)
    byte_steps = -(-z_bits // 8)             # a rise of this many bytes clears Z
    sel_bits = max(1, (byte_steps - 1).bit_length())
    pick = lambda v: v[:sel_bits]  # noqa: E731
    far = lambda v: v[sel_bits:].any() if len(v) > sel_bits else Const(0, 1)  # noqa: E731
    riders = {k: r[k] for k in ("first", "last", "n", "tag", "odd")}
    s = pipe.stage("align", t=(e << r["tag"][:FINE_BITS])[:z_bits], e=e,
                   sel2=pick(r["coarse2"]), kill2=r["restart"] | far(r["coarse2"]),
                   sel1=pick(r["coarse1"]), kill1=r["first"] | far(r["coarse1"]),
                   we0=pipe.valid & ~r["odd"], we1=pipe.valid & r["odd"], **riders)
    # no reset: a row's first two beats clear the shifted sums, so nothing reads them before
    # they are written (a reset would join their enables on iCE40)
    parts = [SimpleNamespace(lo=Signal(split, name=f"sum{k}_lo", reset_less=True),
                             no_carry=Signal(name=f"sum{k}_no_carry", reset_less=True),
                             hi0=Signal(z_bits - split, name=f"sum{k}_hi0", reset_less=True),
                             hi1=Signal(z_bits - split, name=f"sum{k}_hi1", reset_less=True))
             for k in ("_even", "_odd")]
    whole = lambda z: Cat(z.lo, Mux(z.no_carry, z.hi0, z.hi1))  # noqa: E731
    # rescale (loop cycle 1): each partial sum shifted by the beat's rise in bytes since two
    # beats back (cleared by a row's first two beats or a rise past its width)
    s = pipe.stage("rescale", **{f"p{k}": Mux(s.kill2, 0, whole(z) >> Cat(Const(0, 3), s.sel2))
                                for k, z in enumerate(parts)},
                   t=s.t, we0=s.we0, we1=s.we1, e=s.e, sel1=s.sel1, kill1=s.kill1, **keep_riders(s))
    # sum (loop cycle 2): Z = shifted + (e << fine), the low half and both high halves
    for k, z in enumerate(parts):
        shifted = getattr(s, f"p{k}")
        # the carry leaves as the sum bit ``1 + 0 + carry`` (its complement: a LUT packed with
        # its flip-flop, no bare carry out)
        t = s.t
        low = Cat(shifted[:split], Const(1, 1)) + Cat(t[:split], Const(0, 1))
        with m.If(getattr(s, f"we{k}")):
            m.d.sync += [z.lo.eq(low[:split]), z.no_carry.eq(low[split]),
                         z.hi0.eq(shifted[split:] + t[split:]), z.hi1.eq(shifted[split:] + t[split:] + 1)]
    s = pipe.stage("sum", e=s.e, sel1=s.sel1, kill1=s.kill1, **keep_riders(s))
    e_wp = Signal(range(unit.e_depth))
    m.d.comb += [q.e_write.en.eq(pipe.valid), q.e_write.addr.eq(e_wp), q.e_write.data.eq(Cat(s.e, s.tag)),
                 q.lengths.w_en.eq(pipe.valid & s.last), q.lengths.w_data.eq(Cat(s.n, s.tag))]
    m.d.sync += e_wp.eq(e_wp + pipe.valid)
    # at a row's end: S = A_own + (A_other >> rise of the last beat), A = Z >> fine; the
    # beat's own Z was written a cycle ago, the other's (last updated one beat back) holds
    mine = lambda odd, a, b: SimpleNamespace(**{f: Mux(odd, getattr(b, f), getattr(a, f))  # noqa: E731
                                                for f in ("lo", "no_carry", "hi0", "hi1")})
    own, other = mine(s.odd, *parts), mine(s.odd, parts[1], parts[0])
    s = pipe.stage("combine_pick", own=whole(own), other=Mux(s.kill1, 0, whole(other)), sel1=s.sel1,
                   fine=s.tag[:FINE_BITS], last=s.last)
    s = pipe.stage("combine_coarse", own=s.own, other=s.other >> Cat(Const(0, 3), s.sel1), fine=s.fine,
                   last=s.last)
    s = pipe.stage("combine_shift", own=(s.own >> s.fine)[:sum_bits], other=(s.other >> s.fine)[:sum_bits],
                   last=s.last)
    total, r = pipe.add("combine", s.own, s.other, sum_bits, COMBINE_CHUNK, last=s.last)
    assert pipe.stages == unit.exp_stages
    m.d.comb += [q.sums.w_en.eq(pipe.valid & r["last"]), q.sums.w_data.eq(total)]
    assert lo <= hi


def keep_riders(s):
    """The row riders of stage ``s`` after the exp2 stages."""
    return {k: getattr(s, k) for k in ("first", "last", "n", "tag", "odd")}


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
    ef - es)`` (``round_half_even_split``), then a hold register; ``rescale_stages(c)``. ``word`` is an e-buffer word ``(e, tag)``. Returns ``(e_s, riders)``."""
    e_bits = c.e_max.bit_length()
    names = list(riders)
    tag = word[e_bits:]
    s = pipe.stage("rescale_amount", e=word[:e_bits], amount=(row_max - tag).as_unsigned()[:len(tag)], **riders)
    s = pipe.stage("rescale_coarse", e=s.e >> Cat(Const(0, 3), s.amount[3:]), fine=s.amount[:3],
                   **{n: getattr(s, n) for n in names})
    s = pipe.stage("rescale", e=s.e >> s.fine, **{n: getattr(s, n) for n in names})
    e_s_bits = e_bits - (c.ef - c.es) + 1
    e_s, r = round_half_even_split(pipe, s.e, c.ef - c.es, "rescale_round", ROUND_CHUNK,
                                   **{n: getattr(s, n) for n in names})
    # a fabric register: the product's DSP takes its input register from the next one
    s = pipe.stage("rescale_hold", e_s=e_s[:e_s_bits], **r)
    return s.e_s, {n: getattr(s, n) for n in names}
