"""Row bookkeeping of the softmax unit: a queue of row descriptors and the row cursor.

``RowQueue`` — an in-order queue of row descriptors (a row's max and length, its sum, its
reciprocal) in flip-flops, ``depth`` entries. Function: words written with ``w_en`` leave
in order; ``r_valid`` (a register: a thermometer flag) says the head exists, ``r_data``
is the head (a register, refilled from the ring), ``r_en`` pops it (only while
``r_valid``). There is no ``w_rdy``: the unit lets a row in only while every queue it will
pass through has room (``rows_busy`` in ``rtl_gen.softmax``), so a write never finds the
queue full. Latency: a word written into an empty queue is the head two cycles later.
The consumer sees registers only; the ring's read multiplexer feeds only the head register.

``RowCursor`` — walks the beats of the row a pass issues, the next row prefetched. The
row's fields (e.g. its reciprocal) sit in two slots, the current row's and the next
row's, and a toggle ``sel`` says which is current; a row starts by flipping ``sel``, so
starting a row loads no wide register (the start strobe reaches only ``sel``, ``active``,
``pending``, the length counter and ``last``). The pass reads ``current(name)`` (one LUT
level from ``sel``) into its first pipeline register. Timing: a descriptor at the head of
the queue in cycle t is fetched in t, the row can start in t + 1, its first beat issue in
t + 2; the next row starts on the cycle of the current row's last beat (no bubble).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pipeline import CreditQueue


class RowQueue(wiring.Component):
    """In-order queue of ``width``-bit words in flip-flops (module docstring).

    Ports: ``w_en`` (In 1), ``w_data`` (In width), ``r_en`` (In 1), ``r_valid`` (Out 1),
    ``r_data`` (Out width). Capacity: ``depth + 1`` words (a ring of ``depth`` and the
    head register). ``r_valid`` and ``r_data`` are registers: the ring's oldest word moves
    into the head register in the cycle after it is found empty (latency: a word written
    into an empty queue is the head two cycles later; throughput: a word every other
    cycle, as fast as a ``RowCursor`` fetches).
    """

    def __init__(self, width: int, depth: int):
        assert width >= 1 and depth >= 2
        self.width, self.depth = width, depth
        super().__init__({"w_en": In(1), "w_data": In(width), "r_en": In(1),
                          "r_valid": Out(1), "r_data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        entries = [Signal(self.width, name=f"entry{k}", reset_less=True) for k in range(depth)]
        wp, rp = Signal(range(depth), name="wp"), Signal(range(depth), name="rp")
        filled = [Signal(name=f"filled{k}") for k in range(depth)]  # thermometer of the ring's count
        head = Signal(self.width, name="head", reset_less=True)
        head_valid = Signal(name="head_valid")
        move = Signal(name="move")  # the ring's oldest word enters the head register
        for k, entry in enumerate(entries):
            with m.If(self.w_en & (wp == k)):
                m.d.sync += entry.eq(self.w_data)
        with m.If(self.w_en):
            m.d.sync += wp.eq(Mux(wp == depth - 1, 0, wp + 1))
        # the head is refilled only once empty (registers only: ``r_en`` reaches nothing but
        # ``head_valid``), so the queue gives a word every other cycle at most
        m.d.comb += move.eq(filled[0] & ~head_valid)
        with m.If(move):
            m.d.sync += [rp.eq(Mux(rp == depth - 1, 0, rp + 1)),
                         head.eq(Cat(entries).word_select(rp, self.width))]
        m.d.sync += head_valid.eq(move | (head_valid & ~self.r_en))
        CreditQueue._thermometer(m, filled, self.w_en, move)
        m.d.comb += [self.r_valid.eq(head_valid), self.r_data.eq(head)]
        return m


class RowCursor:
    """The cursor of one pass (module docstring), built inside a ``Module`` by ``drive``.

    ``active``: a row is being issued; ``last`` (a register): the next issued beat ends it;
    ``start``: the prefetched row becomes current this cycle; ``first``: the next issued
    beat is its row's first. ``fields`` name the row's values (``name=shape``), read with
    ``current(name)``.
    """

    def __init__(self, name: str, n_max: int, **fields):
        count = range(n_max + 1)
        # ``active`` and ``pending`` have a reset; the rest is loaded before it is read (no
        # reset: on iCE40 a flip-flop's reset joins its enable, one LUT more)
        self.active = Signal(name=f"{name}_active")
        self.left = Signal(count, name=f"{name}_left", reset_less=True)  # beats not yet issued
        self.last = Signal(name=f"{name}_last", reset_less=True)         # left == 1
        self.first = Signal(name=f"{name}_first", reset_less=True)
        self.pending = Signal(name=f"{name}_pending")       # the next row's slot is filled
        self.sel = Signal(name=f"{name}_sel")               # which slot is the current row's
        self.next_n = Signal(count, name=f"{name}_next_n", reset_less=True)
        self.next_single = Signal(name=f"{name}_next_single", reset_less=True)
        self.start = Signal(name=f"{name}_start")
        self.slots = {k: [Signal(shape, name=f"{name}_{k}{j}", reset_less=True) for j in range(2)]
                      for k, shape in fields.items()}

    def current(self, name: str):
        """The current row's field ``name`` (a multiplexer from the two slots)."""
        slot = self.slots[name]
        return Mux(self.sel, slot[1], slot[0])

    def drive(self, m: Module, issue, queue, n, *, allow=1, **values):
        """``issue``: a beat of the current row is issued this cycle (only while
        ``active``); ``queue``: the ``RowQueue`` of descriptors; ``n`` and ``values``:
        the head's length and fields (slices of ``queue.r_data``); ``allow`` (a register):
        the head may be fetched. Pops the queue."""
        end = issue & self.last
        fetch = ~self.pending & queue.r_valid & allow
        m.d.comb += [self.start.eq(self.pending & (~self.active | end)), queue.r_en.eq(fetch)]
        start = self.start
        m.d.sync += [
            self.pending.eq(fetch | (self.pending & ~start)),
            self.active.eq(start | (self.active & ~end)),
            self.sel.eq(self.sel ^ start),
            self.first.eq(Mux(start, 1, Mux(issue, 0, self.first))),
            self.last.eq(Mux(start, self.next_single, Mux(issue, self.left == 2, self.last))),
        ]
        with m.If(start | issue):
            m.d.sync += self.left.eq(Mux(start, self.next_n, self.left - 1))
        # the next row's length and the slot that is not current follow the queue's head
        # while ``~pending`` (nothing reads them then) and hold from the fetch on: their
        # enables see only the cursor's own flip-flops, never the queue's valid
        with m.If(~self.pending):
            m.d.sync += [self.next_n.eq(n), self.next_single.eq(n == 1)]
        for k, slot in self.slots.items():
            for j in range(2):
                with m.If(~self.pending & (self.sel != j)):
                    m.d.sync += slot[j].eq(values[k])
