"""Row accumulators, holding bank and result drain of the GEMV shell
(``rtl_gen.gemv_common``), with the optional per-row scale stage and group epilogue.

Algorithm: each row accumulator adds its row increment (one carry chain; the carry-in folds
a negation's ``+1``) while a beat leaves the read pipeline; at a tile's (``qgroup``: a
quantisation group's) end the ``rows x batch`` sums move to the holding bank and the
accumulators restart from 0. The bank leaves one row per cycle through the unit's
``_finish`` (LUT-GEMV: offset and ``>> 1``), then the scale stage or the group epilogue if
any, then a ``SkidBuffer`` in front of ``y``.

Timing (the pipeline idiom of ``rtl_gen.pipeline``): ``advance``, the read pipeline's
enable, is a **register** decided a cycle ahead from registers only (the last two pipeline
stages' flags, the bank's count and the drain's move), so no port's valid or ready reaches
the wide stage enables; the drain moves on registers only (its own output register and the
skid's registered ready; the scale and ``q`` streams enter through skid buffers too). The
pipeline stalls only when a tile's final beat reaches the accumulators while the bank still
holds the previous tile's results.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring

from lowbit.golden_models import lutgemv as golden

from .fixed import StallPipeline
from .skid import SkidBuffer


class HeldStages(StallPipeline):
    """``StallPipeline`` stages whose data registers carry no reset (only the ``valid`` bits
    do), so the reset input never reaches the stages' clock enables."""

    def reg(self, value, name: str) -> Signal:
        value = Value.cast(value)
        register = Signal(value.shape(), name=name, reset_less=not name.startswith("valid_"))
        with self.m.If(self.advance):
            self.m.d.sync += register.eq(value)
        return register


def build_drain(unit, m, advance, last, before, increments) -> None:
    """Accumulators, holding bank, drain and the ``advance`` register of ``unit``.

    ``last``/``before``: the flags of the read pipeline's last stage and of the stage before
    it (``valid``, ``seg_close``, ``pass_end``, ``seg_first``, ``tile_end``, ``seg_sum``);
    ``increments``: per batch vector and row (vector-major), the signed increment and its
    carry-in bit from the last stage."""
    cfg, batch, rows = unit.config, unit.batch, unit.config.rows
    # no reset on the wide registers (the reset pin stays out of their enables): the
    # accumulators are cleared in the cycle after a reset by ``clear`` (a register, reset
    # to 1; no beat reaches them in that cycle), the bank is read only while counted full
    accs = [Signal(signed(unit.acc_w), name=f"acc{v}_{r}", reset_less=True)
            for v in range(batch) for r in range(rows)]
    hold = [Signal(signed(unit.acc_w), name=f"hold{v}_{r}", reset_less=True)
            for v in range(batch) for r in range(rows)]
    clear = Signal(init=1, name="acc_clear")
    m.d.sync += clear.eq(0)
    with m.If(clear):
        m.d.sync += [a.eq(0) for a in accs]
    sums_next = []
    for acc, (value, carry) in zip(accs, increments):
        wide = Cat(Const(1, 1), acc).as_signed() + Cat(carry, value.as_signed()).as_signed()
        sums_next.append(wide[1:unit.acc_w + 1].as_signed())
    hold_count = Signal(range(rows + 1))
    hold_busy = Signal()
    hold_last = Signal()
    hold_group = {}  # qgroup: the group's flags and activation sum, and the pass precision
    if unit.qgroup:
        hold_group = dict(first=Signal(name="hold_first"), tlast=Signal(name="hold_tile_last"),
                          sumx=Signal.like(last.seg_sum, name="hold_sumx"),
                          bits=Signal.like(unit.bits, name="hold_bits"))
    m.d.comb += hold_busy.eq(hold_count != 0)
    # registers decided a cycle ahead with ``advance`` (below): a beat leaves the read
    # pipeline into the accumulators (``take``), and it closes a tile (``load``)
    take = Signal(name="acc_take")
    load = Signal(name="hold_load")
    with m.If(take):
        m.d.sync += [a.eq(n) for a, n in zip(accs, sums_next)]
        with m.If(load):
            m.d.sync += [a.eq(0) for a in accs]
            m.d.sync += [h.eq(n) for h, n in zip(hold, sums_next)]
            m.d.sync += [hold_count.eq(rows), hold_last.eq(last.pass_end)]
            if unit.qgroup:
                m.d.sync += [hold_group["first"].eq(last.seg_first),
                             hold_group["tlast"].eq(last.tile_end),
                             hold_group["sumx"].eq(last.seg_sum), hold_group["bits"].eq(unit.bits)]
            unit._capture(m)

    # ---- drain: one row result per cycle, into a stream whose ready is a register
    m.submodules.y_skid = skid = SkidBuffer(unit.y.payload.shape())
    wiring.connect(m, skid.o, wiring.flipped(unit.y))
    raw = (unit._group_stage(m, skid.i) if unit.qgroup else
           unit._scale_stage(m, skid.i) if unit.scale_bits else skid.i)
    drain = Signal(name="drain")
    m.d.comb += drain.eq(hold_busy & (~raw.valid | raw.ready))
    with m.If(drain):
        m.d.sync += [raw.valid.eq(1), raw.payload.last.eq(hold_last & (hold_count == 1)),
                     hold_count.eq(hold_count - 1)]
        m.d.sync += [getattr(raw.payload, k).eq(v) for k, v in hold_group.items()]
        m.d.sync += [out.eq(unit._finish(m, hold[v * rows], v))
                     for v, out in enumerate(unit._fields(raw.payload.data))]
        m.d.sync += [hold[v * rows + r].eq(hold[v * rows + r + 1])
                     for v in range(batch) for r in range(rows - 1)]
    with m.Elif(raw.ready):
        m.d.sync += raw.valid.eq(0)

    # ---- advance, a cycle ahead: the last stage's next beat closes a tile while the bank
    # is still busy next cycle
    close_next = Mux(advance, before.valid & before.seg_close, last.valid & last.seg_close)
    valid_next = Mux(advance, before.valid, last.valid)
    busy_next = load | (hold_busy & ~((hold_count == 1) & drain))
    advance_next = ~(close_next & busy_next)
    m.d.sync += [advance.eq(advance_next), take.eq(valid_next & advance_next),
                 load.eq(close_next & ~busy_next)]


def _enter(m, port, name):
    """An input stream through a ``SkidBuffer`` (registered ``ready`` at the port)."""
    skid = SkidBuffer(port.payload.shape())
    m.submodules[f"{name}_skid"] = skid
    wiring.connect(m, wiring.flipped(port), skid.i)
    return skid.o


def scale_stage(unit, m, out):
    """Per-row output scale: joins each unscaled result with its ``scale`` beat and registers
    ``y * s`` into ``out`` (one multiplier per batch vector, exact in ``out_width`` bits).
    Returns the unscaled result stream feeding it."""
    raw = stream.Signature(data.StructLayout({"data": unit._results(unit.acc_w), "last": 1})).create(
        path=("raw",))
    scale = unit._scale_in = _enter(m, unit.scale, "scale")  # (a hook for fault tests)
    advance = Signal(name="scale_advance")
    m.d.comb += advance.eq(~out.valid | out.ready)
    m.d.comb += [raw.ready.eq(scale.valid & advance), scale.ready.eq(raw.valid & advance)]
    with m.If(raw.valid & scale.valid & advance):
        m.d.sync += [out.valid.eq(1), out.payload.last.eq(raw.payload.last)]
        for field, value in zip(unit._fields(out.payload.data), unit._fields(raw.payload.data)):
            product = value * scale.payload.data
            m.d.sync += field.eq(product[:golden.out_width(unit.config)].as_signed())
    with m.Elif(out.ready):
        m.d.sync += out.valid.eq(0)
    return raw


def group_stage(unit, m, out):
    """The group epilogue (``qgroup``; ``rtl_gen.gemv_common``'s docstring): joins each row's
    group partial with its ``q`` beat; five stages under one enable (``~out.valid |
    out.ready``, registers only): register, ``c * sum(x_s)``, ``v = (acc + c * sum) >> sh``,
    ``S * v``, ``total += S * v`` (the ring of ``rows`` totals; the tile's final group sends
    the total to ``out``). Returns the stream of group partials feeding it."""
    cfg = unit.config
    out_w = golden.out_width(cfg)
    raw = stream.Signature(data.StructLayout({
        "data": signed(unit.acc_w), "last": 1, "first": 1, "tlast": 1,
        "sumx": signed(golden.qsum_width(cfg)), "bits": unsigned(cfg.bits_max.bit_length())})).create(
        path=("group",))
    q = unit._q_in = _enter(m, unit.q, "q")  # (a hook for fault tests)
    adv = Signal(name="epilogue_advance")
    m.d.comb += adv.eq(~out.valid | out.ready)
    m.d.comb += [raw.ready.eq(q.valid & adv), q.ready.eq(raw.valid & adv)]
    e = HeldStages(m, adv)
    top = Signal.like(q.payload.zero, name="group_zero_top")  # 2**bits - 1
    with m.Switch(raw.payload.bits):
        for b in range(1, cfg.bits_max + 1):
            with m.Case(b):
                m.d.comb += top.eq((1 << b) - 1)
    zero = Mux(q.payload.zero > top, top, q.payload.zero)
    s = e.stage("group_in", valid=raw.valid & q.valid, acc=raw.payload.data,
                coef=unit._group_coef(raw.payload.bits, zero), sumx=raw.payload.sumx,
                scale=q.payload.scale, first=raw.payload.first, tlast=raw.payload.tlast,
                last=raw.payload.last)
    s = e.stage("group_offset", valid=s.valid, acc=s.acc, offset=s.coef * s.sumx, scale=s.scale,
                first=s.first, tlast=s.tlast, last=s.last)
    value = ((s.acc + s.offset) >> unit.group_shift)[:unit.acc_w].as_signed()
    s = e.stage("group_value", valid=s.valid, value=value, scale=s.scale,
                first=s.first, tlast=s.tlast, last=s.last)
    s = e.stage("group_scaled", valid=s.valid, product=s.value * s.scale,
                first=s.first, tlast=s.tlast, last=s.last)
    ring = [Signal(signed(out_w), name=f"group_total{r}") for r in range(cfg.rows)]
    total = (Mux(s.first, 0, ring[0]) + s.product)[:out_w].as_signed()
    with m.If(adv):
        m.d.sync += [out.valid.eq(s.valid & s.tlast), out.payload.last.eq(s.last),
                     out.payload.data.eq(total)]
        with m.If(s.valid):
            m.d.sync += [a.eq(b) for a, b in zip(ring, ring[1:] + [total])]
    return raw
