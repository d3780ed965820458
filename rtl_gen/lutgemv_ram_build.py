"""The table builder of the RAM-table LUT-GEMV (``rtl_gen.lutgemv_ram``): ``x`` groups into a
ring of table slots, one entry per cycle, broadcast to every lane's table RAM.

Algorithm: a group of ``g`` activations ``a_0 .. a_{g-1}`` has the table
``T[e] = base + sum_{l<F} (bit_l(e) ? +a_l : -a_l)`` over ``F`` free index bits (symmetric
half: ``F = g - 1``, ``base = a_{g-1}``; full table: ``F = g``, ``base = 0``). The builder
walks ``e`` in Gray-code order: ``T[gray(0)] = base - sum_{l<F} a_l`` (one adder tree, the
cycle after the beat is taken), then each step flips one index bit ``l`` and adds
``+-2 a_l`` (one carry chain), so an entry leaves every cycle: ``2**F + 1`` cycles per group
(the next ``x`` beat is taken in the last step, its first entry made the cycle after). The entry is written at ``slot * 2**F + gray(n)``.

The group's activation sum ``sum_l a_l`` is the all-plus entry ``T[2**F - 1]``: the walk's
entry at that step is added to a running vector sum; at the vector's
end (``x.last``, or its ``k_max / g``-th group: a longer vector's further groups are taken and
dropped, not built, not summed) the sum goes to a two-entry ring, one per vector, read by
the pass that uses the vector. ``x.ready``: a slot is free, no more than two vectors are
complete and not yet drained, and the builder is idle or in its last step.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Mux, Signal, signed

from lowbit.golden_models import lutgemv as golden


def gray_steps(free_bits: int) -> list[tuple[int, int]]:
    """``(lane, plus)`` of the step from Gray index ``gray(n)`` to ``gray(n+1)`` for each ``n``
    (the last step wraps and is never used): lane ``ctz(n+1)``, ``plus`` if it becomes 1."""
    steps = []
    for n in range(1 << free_bits):
        m = (n + 1) % (1 << free_bits) or (1 << free_bits)
        lane = (m & -m).bit_length() - 1
        steps.append((min(lane, free_bits - 1), int(not (m >> (lane + 1)) & 1)))
    return steps


def build_tables(unit, m, release):
    """The builder (module docstring) on ``unit.x``; ``release``: the consumer frees its
    current slot this cycle. Returns the write port signals (``addr``, ``data``, ``en``), the
    per-slot end flags, the count of built slots and the sum ring."""
    cfg = unit.config
    g, F, E, slots = cfg.group, unit.free_bits, unit.entries, unit.slots
    lanes = [Signal(signed(cfg.act_bits), name=f"build_lane{l}") for l in range(g)]
    entry = Signal(signed(unit.entry_w), name="build_entry")
    n = Signal(range(E), name="build_step")
    init, building = Signal(name="build_init"), Signal(name="building")
    slot = Signal(unit.slot_bits, name="build_slot")
    group_end = Signal(name="build_group_end")  # the group being built ends its vector
    groups = Signal(range(unit.groups_max), name="build_groups")  # groups of this vector so far
    dropping = Signal(name="build_dropping")  # past k_max: taken and dropped until x.last
    used = Signal(range(slots + 1), name="slots_used")  # allocated (built or building)
    full = Signal(range(slots + 1), name="slots_full")  # built, not released
    slot_end = Signal(slots, name="slot_end")
    sum_run = Signal(signed(golden.sum_width(cfg)), name="sum_running")
    ring = [Signal(signed(golden.sum_width(cfg)), name=f"sum_ring{v}") for v in range(2)]
    ring_wr, vecs = Signal(name="sum_ring_wr"), Signal(range(3), name="vectors_pending")
    vec_done = Signal(name="vector_drained")  # driven by the drain (one pulse per pass)

    last_step = building & (n == E - 1)
    take = (~building | last_step) & ~init & (used != slots) & (vecs != 2)
    m.d.comb += unit.x.ready.eq(dropping | take)
    accepted = unit.x.valid & unit.x.ready
    ends = unit.x.payload.last | (groups == unit.groups_max - 1)
    alloc = accepted & ~dropping
    m.d.sync += init.eq(alloc)
    with m.If(accepted & dropping):
        m.d.sync += dropping.eq(~unit.x.payload.last)
    with m.If(alloc):
        m.d.sync += [*(a.eq(unit.x.payload.data[l]) for l, a in enumerate(lanes)),
                     group_end.eq(ends), groups.eq(Mux(ends, 0, groups + 1)),
                     dropping.eq(~unit.x.payload.last & ends)]
    base = lanes[g - 1] if cfg.symmetric else Const(0, 1)
    first = base
    for a in lanes[:F]:
        first = first - a
    with m.If(init):  # the first entry: one adder tree
        m.d.sync += [entry.eq(first), n.eq(0), building.eq(1)]
    steps = gray_steps(F)
    lane_of = Array([Const(l, range(g)) for l, _ in steps])
    plus_of = Array([Const(p, 1) for _, p in steps])
    pick, plus = Array(lanes)[lane_of[n]], plus_of[n]
    # entry +- 2a as one adder: + (2a) or + (~(2a) + 1), the +1 as the carry-in
    step = (Cat(Const(1, 1), entry).as_signed() + Cat(~plus, ~plus, Mux(plus, pick, ~pick)).as_signed())[1:]
    # the all-plus entry (index 2**F - 1, step n_all of the walk) is the group's sum
    n_all = next(k for k in range(E) if k ^ (k >> 1) == E - 1)
    with m.If(building):
        m.d.sync += [entry.eq(step), n.eq(n + 1)]
        with m.If(n == n_all):  # the group sum into the vector's running sum (the ring at its end)
            m.d.sync += sum_run.eq(Mux(group_end, 0, sum_run + entry))
            with m.If(group_end):
                m.d.sync += [Array(ring)[ring_wr].eq(sum_run + entry), ring_wr.eq(~ring_wr)]
        with m.If(last_step):
            m.d.sync += [slot.eq(slot + 1), slot_end.bit_select(slot, 1).eq(group_end),
                         building.eq(0)]  # (init is low here: the next group starts next cycle)
    m.d.sync += [used.eq(used + alloc - release), full.eq(full + last_step - release)]
    m.d.sync += vecs.eq(vecs + (alloc & ends) - vec_done)
    write = SimpleNamespace(addr=Cat(*gray(n, F), slot), data=entry, en=building)
    return SimpleNamespace(write=write, slot_end=slot_end, full=full, ring=ring, vec_done=vec_done,
                           dropping=dropping)


def gray(n, bits):
    """The bits of ``n ^ (n >> 1)``, low first."""
    return [n[b] ^ n[b + 1] if b + 1 < bits else n[b] for b in range(bits)]
