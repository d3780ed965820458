"""The vector store of the GEMV shell (``rtl_gen.gemv_common``): ``x`` beats through the
subclass's store pipeline into a two-vector memory, with each vector's activation sum.

Algorithm: every accepted ``x`` beat (one group of ``span`` activations per batch vector)
enters the subclass's ``_store`` pipeline, which never stalls; ``depth`` cycles later its
stored word (a lookup table, or the activations themselves) is written at
``[buffer][group]`` of a ``lib.memory.Memory`` holding two vectors (double buffer). The
group's activation sum (``_store``'s second result, registered ``sum_depth`` cycles after the
beat) is added to a running sum; a vector's last beat closes the buffer (``full``), records
its last group index (``n_groups``) and its sum (``sums``). A vector longer than ``k_max`` is
truncated: groups past ``k_max / span`` are consumed, not stored and not summed.

With ``qgroup`` one activation sum per quantisation group is written beside the table store
(a second two-vector memory, one word per group).

Timing: the bookkeeping that closes a vector (``full``, the running sums) happens at the
later of the word's and the sum's register depth, so a pass never starts before its vector's
sum is final. ``x.ready`` is a register (``free``, decided a cycle ahead from the next
states of ``full``, ``in_flight`` and ``in_buffer``), through the unit's ``_x_ready`` hook.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from lowbit.golden_models import lutgemv as golden


def _delay(unit, m, value, name, stages):
    """``value`` through ``stages`` store-side registers (the store pipeline never stalls)."""
    for stage in range(stages):
        value = unit._sreg(m, value, f"{name}_{stage}")
    return value


def build_store(unit, m) -> SimpleNamespace:
    """Elaborate the vector store of ``unit`` (a ``GemvStreamUnit``) into ``m``.

    Returns the read side: ``read`` (the table memory's read port), ``qread`` (the group sums'
    read port, or None), ``seg_bits``, ``word_w`` (bits per batch vector in a stored word),
    ``full`` (2 bits: buffer holds a whole vector), ``n_groups`` and ``sums`` (per buffer),
    and ``release``/``release_buffer`` (inputs: a pass's final beat frees that buffer)."""
    cfg, batch = unit.config, unit.batch
    stored = [unit._store(m, unit._lanes(m, v)) for v in range(batch)]  # one per batch vector
    word = Cat(*(st[0] for st in stored))
    word_w, group_sums = len(stored[0][0]), [st[1] for st in stored]
    depth, sum_depth = stored[0][2], stored[0][3]
    m.submodules.store = memory = Memory(shape=unsigned(len(word)), depth=2 << unit.addr_bits, init=[])
    write, read = memory.write_port(), memory.read_port()

    full = Signal(2)
    n_groups = [Signal(range(unit.groups_max), name=f"n_groups{b}") for b in range(2)]
    sums = [[Signal(signed(golden.sum_width(cfg)), name=f"sum_x{b}_{v}") for v in range(batch)]
            for b in range(2)]
    in_buffer = Signal()
    in_flight = Signal(2)  # a vector's last group is in the store pipeline
    # a pass's final weight beat frees its buffer (driven by the sequencer)
    release, release_buffer = Signal(name="store_release"), Signal(name="store_release_buffer")
    free = Signal(init=1, name="x_free")  # the buffer the next beat goes to is free: a register
    m.d.comb += unit.x.ready.eq(unit._x_ready(m, free))
    take = unit.x.valid & unit.x.ready
    closing = take & unit.x.payload.last
    with m.If(closing):
        m.d.sync += [in_buffer.eq(~in_buffer), in_flight.bit_select(in_buffer, 1).eq(1)]
    with m.If(release):
        m.d.sync += full.bit_select(release_buffer, 1).eq(0)
    valid, last, buffer = (_delay(unit, m, v, f"{n}_store", depth) for v, n in
                           ((take, "valid"), (unit.x.payload.last, "last"), (in_buffer, "buffer")))
    count = Signal(range(unit.groups_max + 1))
    room = Signal()  # the vector has fewer than k_max / span groups stored (else: drop)
    m.d.comb += room.eq(count != unit.groups_max)
    m.d.comb += [write.en.eq(valid & room), write.data.eq(word),
                 write.addr.eq(Cat(count[:unit.addr_bits], buffer))]
    with m.If(valid):
        with m.If(room):
            m.d.sync += count.eq(count + 1)
        with m.If(last):
            m.d.sync += count.eq(0)
            for b in range(2):
                with m.If(buffer == b):
                    # the last group index (a truncated vector: the last one stored)
                    m.d.sync += n_groups[b].eq(Mux(room, count, unit.groups_max - 1))

    # the sums side: the word side's controls, delayed to the sums' register depth
    lag = max(0, sum_depth - depth) if group_sums[0] is not None else 0
    s_valid, s_last, s_buffer, s_room = (_delay(unit, m, v, f"{n}_sum", lag) for v, n in
                                         ((valid, "valid"), (last, "last"), (buffer, "buffer"),
                                          (room, "room")))
    s_count = _delay(unit, m, count, "count_sum", lag)
    running = [Signal(signed(golden.sum_width(cfg)), name=f"running_sum{v}") for v in range(batch)]
    with m.If(s_valid):
        with m.If(s_room):
            for acc, part in zip(running, group_sums):
                if part is not None:
                    m.d.sync += acc.eq(acc + part)
        with m.If(s_last):
            m.d.sync += [full.bit_select(s_buffer, 1).eq(1), in_flight.bit_select(s_buffer, 1).eq(0)]
            m.d.sync += [acc.eq(0) for acc in running]
            for b in range(2):
                with m.If(s_buffer == b):
                    m.d.sync += [total.eq(Mux(s_room, acc + part, acc)) for total, acc, part
                                 in zip(sums[b], running, group_sums) if part is not None]
    # ``free`` a cycle ahead, from the next states of full, in_flight and in_buffer
    stored_now = s_valid & s_last
    full_next = (full | Mux(stored_now, 1 << s_buffer, 0)) & ~Mux(release, 1 << release_buffer, 0)
    flight_next = (in_flight | Mux(closing, 1 << in_buffer, 0)) & ~Mux(stored_now, 1 << s_buffer, 0)
    m.d.sync += free.eq(~(full_next | flight_next).bit_select(in_buffer ^ closing, 1))
    qread, seg_bits = None, 0
    if unit.qgroup:  # one activation sum per quantisation group, beside the table store
        assert group_sums[0] is not None
        qs_w = golden.qsum_width(cfg)
        n_seg = unit.groups_max >> unit.seg_log
        seg_bits = max(0, (n_seg - 1).bit_length())
        m.submodules.qsums = qmem = Memory(shape=signed(qs_w), depth=2 << seg_bits, init=[])
        qwrite, qread = qmem.write_port(), qmem.read_port()
        seg_run = Signal(signed(qs_w), name="seg_running_sum")
        closes = s_count[:unit.seg_log].all() if unit.seg_log else Const(1)
        seg_total = seg_run + group_sums[0]
        m.d.comb += [qwrite.en.eq(s_valid & s_room & (closes | s_last)), qwrite.data.eq(seg_total),
                     qwrite.addr.eq(Cat(s_count[unit.seg_log:unit.seg_log + seg_bits], s_buffer))]
        with m.If(s_valid & s_room):
            m.d.sync += seg_run.eq(Mux(closes | s_last, 0, seg_total))
        with m.If(s_valid & s_last):
            m.d.sync += seg_run.eq(0)
    return SimpleNamespace(read=read, qread=qread, seg_bits=seg_bits, word_w=word_w, full=full,
                           n_groups=n_groups, sums=sums, release=release, release_buffer=release_buffer)
