"""The table builder of the RAM-table LUT-GEMV (``rtl_gen.lutgemv_ram``): ``x`` groups into a
ring of table slots, one entry per cycle, broadcast to every lane's table RAM.

Algorithm: a group of ``g`` activations ``a_0 .. a_{g-1}`` has the table
``T[e] = base + sum_{l<F} (bit_l(e) ? +a_l : -a_l)`` over ``F`` free index bits (symmetric
half: ``F = g - 1``, ``base = a_{g-1}``; full table: ``F = g``, ``base = 0``). The builder
walks ``e`` in Gray-code order: ``T[gray(0)] = base + sum_{l<F} (~a_l + 1)``, then each step
flips one index bit ``l`` and adds ``+-2 a_l`` (one carry chain), so an entry leaves every
cycle: ``2**F + 1`` cycles per group. The entry is written at ``slot * 2**F + gray(n)``.

Pipeline (every carry chain and every wide enable one LUT level from flip-flops):

* ``alloc`` (a beat taken): the lanes are loaded, and the first level of the adder tree of
  ``T[gray(0)]`` (pairs of ``~a_l`` / ``base``, each ``+1`` a carry-in) is registered from
  the beat; ``init1``: the second level; ``init2``: the last adder (one for ``g <= 8``; two
  for the full table at ``g = 8``, whose nine leaves need a ninth ``+1``) into the entry.
* The step's lane and sign come from a ROM of the step number two steps ahead (registered
  one-hot select), the selected ``+-2 a_l`` is registered a step ahead (the ``+1`` of a
  negation rides the step adder's carry-in), so a step is one carry chain.
* The next beat is taken two steps before the walk ends (the lanes are no longer read then),
  so groups follow each other every ``2**F + 1`` cycles; ``x.ready`` is a flip-flop (``take``,
  computed from the next state) or'ed with ``dropping``.
* Slot bookkeeping in thermometer codes (``used``: allocated, ``full``: built, not released;
  ``vectors``: complete, not drained), and the "ends its vector" flags of the built tables in
  a queue whose head is the table in use (``cur_end``), so no counter comparison and no slot
  multiplexer is on a handshake path.

The group's activation sum ``sum_l a_l`` is ``2 base - T[gray(0)]`` (``-T[gray(0)]`` for the
full table), taken from the walk's first entry and added to a running vector sum; at the vector's
end (``x.last``, or its ``k_max / g``-th group: a longer vector's further groups are taken and
dropped, not built, not summed) the sum goes to a two-entry ring, one per vector, read by
the pass that uses the vector. ``x`` is taken while a slot is free, no more than two vectors
are complete and not yet drained, and the builder is idle or in its last two steps.

Timing: a beat taken in cycle ``t`` (idle builder) has its first entry written in
``t + 3``, its last in ``t + 2**F + 2``; the table counts as built (``full``) from ``t + 2**F + 3``.
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


def thermometer(m, name: str, size: int, inc, dec) -> Signal:
    """A count ``0..size`` as ``size`` flags (bit ``k``: count > k), +``inc`` -``dec`` per
    cycle; each flag's next value is one LUT of ``inc``, ``dec`` and its neighbours."""
    therm = Signal(size, name=name)
    bits = [Const(1, 1), *therm, Const(0, 1)]  # bits[k + 1] is flag k
    up, down = inc & ~dec, dec & ~inc
    m.d.sync += [therm[k].eq(Mux(up, bits[k], Mux(down, bits[k + 2], bits[k + 1]))) for k in range(size)]
    return therm


def add_carry(x, y):
    """``x + y + 1`` as one adder: the ``+1`` is the carry-in."""
    return (Cat(Const(1, 1), x).as_signed() + Cat(Const(1, 1), y).as_signed())[1:].as_signed()


def tree_level(values) -> list:
    """One level of an adder tree: neighbours added (``+1`` each as the carry-in), an odd
    one passed on."""
    pairs = [add_carry(values[k], values[k + 1]) for k in range(0, len(values) - 1, 2)]
    return pairs + ([values[-1]] if len(values) % 2 else [])


def build_tables(unit, m, release):
    """The builder (module docstring) on ``unit.x``; ``release``: the consumer frees its
    current slot this cycle. Returns the write port signals (``addr``, ``data``, ``en``), the
    slot flags (``have``: a table is built, ``have2``: two are, ``last``: the walk is in its
    last step, ``cur_end``: the table in use ends its vector), the sum ring, ``vec_done``
    (driven by the drain) and ``dropping``."""
    cfg = unit.config
    g, F, E, slots = cfg.group, unit.free_bits, unit.entries, unit.slots
    lanes = [Signal(signed(cfg.act_bits), name=f"build_lane{l}") for l in range(g)]
    entry = Signal(signed(unit.entry_w), name="build_entry")
    n = Signal(range(E), name="build_step")
    init1, init2, building = Signal(name="build_init1"), Signal(name="build_init2"), Signal(name="building")
    last = Signal(name="build_last")
    take = Signal(name="build_take")  # x.ready of a beat that is built (a flip-flop)
    slot = Signal(unit.slot_bits, name="build_slot")
    pend_end = Signal(name="build_pending_end")  # the allocated group ends its vector
    group_end = Signal(name="build_group_end")  # the group being built ends its vector
    groups = Signal(range(unit.groups_max), name="build_groups")  # groups of this vector so far
    dropping = Signal(name="build_dropping")  # past k_max: taken and dropped until x.last
    sum_run = Signal(signed(golden.sum_width(cfg)), name="sum_running")
    ring = [Signal(signed(golden.sum_width(cfg)), name=f"sum_ring{v}") for v in range(2)]
    ring_wr = Signal(name="sum_ring_wr")
    vec_done = Signal(name="vector_drained")  # driven by the drain (one pulse per pass)

    m.d.comb += unit.x.ready.eq(dropping | take)
    accepted = unit.x.valid & unit.x.ready
    alloc = Signal(name="build_alloc", attrs={"keep": 1})  # one LUT (lutgemv_ram.KEEP)
    m.d.comb += alloc.eq(unit.x.valid & take & ~dropping)
    at_max = Signal(init=unit.groups_max == 1, name="build_group_at_max")  # groups == k_max/g - 1
    ends = unit.x.payload.last | at_max
    with m.If(accepted & dropping):
        m.d.sync += dropping.eq(~unit.x.payload.last)
    with m.If(alloc):
        m.d.sync += [*(a.eq(unit.x.payload.data[l]) for l, a in enumerate(lanes)),
                     pend_end.eq(ends), groups.eq(Mux(ends, 0, groups + 1)),
                     at_max.eq(Const(unit.groups_max == 1) | (~ends & (groups == unit.groups_max - 2))),
                     dropping.eq(~unit.x.payload.last & ends)]

    # T[gray(0)] = base + sum_{l<F} (~a_l + 1): level 1 at alloc, level 2 at init1, the rest at init2
    def leaves(values):
        out = [~values[l] for l in range(F)]
        return out + [values[g - 1] if cfg.symmetric else Const(0, 1)]
    # N leaves take N - 1 = F two-input adders: exactly the F carry-ins the negations need
    level1 = [Signal(v.shape(), name=f"build_sum1_{k}") for k, v in enumerate(
        tree_level(leaves(list(unit.x.payload.data))))]
    with m.If(alloc):
        m.d.sync += [r.eq(v) for r, v in zip(level1, tree_level(leaves(list(unit.x.payload.data))))]
    level2 = [Signal(v.shape(), name=f"build_sum2_{k}") for k, v in enumerate(tree_level(level1))]
    m.d.sync += [r.eq(v) for r, v in zip(level2, tree_level(level1))]
    first = level2
    while len(first) > 1:  # one adder for g <= 8 (two for the full table at g = 8)
        first = tree_level(first)
    first = first[0]

    # the select: step k flips lane ctz(k + 1), to 1 iff bit ctz(k + 1) + 1 of k + 1 is 0.
    # Two registered ranks: ``ahead`` counts k + 1 of the step two loads ahead, rank A holds
    # it with its lowest set bit (isolated by a carry chain), rank B the select and sign
    # (init1: step 0, init2: step 1, step n: step n + 2)
    steps = gray_steps(F)
    ahead = Signal(F + 2, name="build_ahead")
    m.d.sync += ahead.eq(Mux(init2, 4, ahead + 1))
    rank_j, rank_t = Signal(F + 2, name="build_rank_j"), Signal(F + 2, name="build_rank_t")
    m.d.sync += [rank_j.eq(Mux(init2, 3, ahead)), rank_t.eq(Mux(init2, 1, ahead & (~ahead + 1)))]
    sel, sel_plus = Signal(F, name="build_select"), Signal(name="build_select_plus")
    m.d.sync += [sel.eq(Mux(init2, 1 << steps[1 % E][0], Mux(init1, 1 << steps[0][0], rank_t[:F]))),
                 sel_plus.eq(Mux(init2, steps[1 % E][1], Mux(init1, steps[0][1], ~((rank_t << 1) & rank_j).any())))]
    pick = Const(0, cfg.act_bits)
    for l in range(F):  # one-hot AND-OR of the lanes
        pick = pick | (lanes[l].as_unsigned() & sel[l].replicate(cfg.act_bits))
    twice = Cat(Const(0, 1), pick).as_signed()  # 2 a_l
    addend = Signal(signed(cfg.act_bits + 1), name="build_addend")  # +2a, or ~2a with carry-in 1
    carry = Signal(name="build_carry")
    m.d.sync += [addend.eq(Mux(sel_plus, twice, ~twice)), carry.eq(~sel_plus)]
    step = (Cat(Const(1, 1), entry).as_signed() + Cat(carry, addend).as_signed())[1:]

    # walk control: init1 -> init2 -> steps 0 .. E-1 (flags of the step number registered)
    m.d.sync += [init1.eq(alloc), init2.eq(init1)]
    with m.If(init2):
        m.d.sync += [entry.eq(first), n.eq(0), building.eq(1), group_end.eq(pend_end)]
    with m.Elif(building):
        m.d.sync += [entry.eq(step), n.eq(n + 1)]
        with m.If(last):
            m.d.sync += [building.eq(0), slot.eq(slot + 1)]
    live = building & ~last
    near_next = Signal(name="build_near_next")  # the next cycle is one of the walk's last two
    m.d.comb += near_next.eq(live & ((n == E - 3) | (n == E - 2)) if E >= 4 else init2 | live)
    m.d.sync += last.eq(live & (n == E - 2))

    # the group's sum from its first entry: sum_l a_l = 2 base - T[gray(0)] (symmetric;
    # -T[gray(0)] for the full table), registered the cycle after step 0, then added to the
    # vector's running sum and (at the vector's end) written to the ring: each a carry chain
    # between flip-flops, the ring written E cycles before the group's table is complete
    step0, added, added_end = Signal(name="build_step0"), Signal(name="sum_added"), Signal(name="sum_added_end")
    group_sum = Signal(signed(unit.entry_w + 1), name="group_sum")
    m.d.sync += [step0.eq(init2), added.eq(step0)]
    with m.If(step0):
        m.d.sync += [group_sum.eq((lanes[g - 1] << 1) - entry if cfg.symmetric else -entry),
                     added_end.eq(group_end)]
    with m.If(added):
        m.d.sync += sum_run.eq(Mux(added_end, 0, sum_run + group_sum))
        with m.If(added_end):
            m.d.sync += [Array(ring)[ring_wr].eq(sum_run + group_sum), ring_wr.eq(~ring_wr)]

    used = thermometer(m, "slots_used", slots, alloc, release)  # allocated (built or building)
    full = thermometer(m, "slots_full", slots, last, release)  # built, not released
    vecs = thermometer(m, "vectors_pending", 2, alloc & ends, vec_done)
    # x.ready next cycle (alloc now: init1 next, not ready; so used/vectors only fall then)
    idle_next = ~init2 & (~building | last)
    phase = Signal(name="build_phase_next", attrs={"keep": 1})  # flip-flops only: mapped apart
    m.d.comb += phase.eq(~init1 & (near_next | idle_next))
    m.d.sync += take.eq(phase & ~alloc & ~(used[slots - 1] & ~release) & ~(vecs[1] & ~vec_done))
    cur_end = _end_queue(m, slots, full, last, release, group_end)
    write = SimpleNamespace(addr=Cat(*gray(n, F), slot), data=entry, en=building)
    return SimpleNamespace(write=write, have=full[0], have2=full[1] if slots > 1 else Const(0, 1),
                           last=last, cur_end=cur_end, ring=ring, vec_done=vec_done, dropping=dropping)


def _end_queue(m, slots, full, push, pop, flag):
    """The end flags of the built tables, oldest (the one in use) first: ``push`` appends
    ``flag`` behind the ``full`` ones, ``pop`` (the table in use released) shifts. Returns
    the head."""
    queue = Signal(slots, name="slot_ends")
    therm = [Const(1, 1), *full, Const(0, 1)]  # therm[k + 1]: more than k built
    for k in range(slots):
        count_is = lambda j: therm[j] & ~therm[j + 1]  # exactly j built
        here = Mux(pop, count_is(k + 1), count_is(k))  # the new table's place after the pop
        shifted = Mux(pop, queue[k + 1] if k + 1 < slots else Const(0, 1), queue[k])
        m.d.sync += queue[k].eq(Mux(push & here, flag, shifted))
    return queue[0]


def gray(n, bits):
    """The bits of ``n ^ (n >> 1)``, low first."""
    return [n[b] ^ n[b + 1] if b + 1 < bits else n[b] for b in range(bits)]
