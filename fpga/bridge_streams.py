"""The host bridge's stream side: buffer sections -> several input streams, several output
streams -> buffer sections (:mod:`fpga.bridge`).

Contract
--------
Both parts are laid out by *sections*: stream ``k`` owns bytes ``[base_k, base_k + len_k)``
of its buffer, ``len_k`` the byte counts of a ``RUN`` frame (:mod:`fpga.host_protocol`),
sections in stream order from address 0. A ``setup`` pulse computes the bases, one stream
per cycle (``ready`` rises when done; ``total`` is the sum of the lengths, which the control
checks against the frame before ``go``); ``go`` starts the run; ``stop`` ends it at once.

* :class:`StreamFeeder` reads the input buffer's sections into one beat register per input
  stream (``o<k>``): a round-robin reader visits the streams in turn and fills the register
  of any stream that has bytes left and an empty register (``ceil(width/8)`` bytes,
  little-endian, two cycles per byte), so a stream the block does not take never holds up
  the others. ``o<k>.valid`` and ``o<k>.payload`` are flip-flops; ``o<k>.ready`` reaches
  only the register's full flag. ``done``: every section read and every beat taken.
* :class:`StreamCollector` takes output beats of every stream (``i<k>``) into one holding
  register per stream while that stream's section has room (``i<k>.ready`` is the AND of
  two flip-flops), and a round-robin writer copies full registers into their sections
  (one cycle per byte). ``got<k>`` counts the beats stored; ``done``: every section full.
  ``stop`` drops what the registers hold.

The control logic is flat: one-hot state flip-flops (reader, writer) and stream pointers,
registered comparisons, data registers without reset, no multiplier, no carry chain wider
than the buffer address.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamCollector", "StreamFeeder"]


def _select(select, values, width):
    out = Const(0, width)
    for k, v in enumerate(values):
        padded = Cat(v, Const(0, max(0, width - len(v))))[:width]
        out = out | (padded & Cat(*([select[k]] * width)))
    return out


class _Sections(wiring.Component):
    """Shared by feeder and collector: section bases and ends from the byte lengths."""

    def __init__(self, widths: list[int], depth: int, members: dict):
        self.widths = [int(w) for w in widths]
        self.nbytes = [(w + 7) // 8 for w in self.widths]
        self.count, self.depth = len(widths), int(depth)
        self.addr_width = max(1, self.depth.bit_length())
        super().__init__({
            "setup": In(1), "go": In(1), "stop": In(1), "lens": In(16 * self.count),
            "ready": Out(1), "total": Out(17), "done": Out(1), **members})

    def _settled(self, m, running, idle):
        """``done``: ``idle`` (registered from registers) once it reflects the run's start."""
        live = Signal(4)
        with m.If(running):
            m.d.sync += live.eq(Cat(Const(1, 1), live[:-1]))
        with m.Else():
            m.d.sync += live.eq(0)
        m.d.sync += self.done.eq(live[-1] & idle & running)   # registered

    def _setup(self, m):
        """``(bases, ends)`` registers filled one per cycle after ``setup``."""
        n, aw = self.count, self.addr_width
        # data and sequencing registers carry no reset: `setup` starts them afresh, and the
        # control looks at `ready` only after a `setup` (the board reset stays out of them)
        bases = [Signal(aw, name=f"base{k}", reset_less=True) for k in range(n)]
        ends = [Signal(aw, name=f"end{k}", reset_less=True) for k in range(n)]
        step = Signal(n + 1, reset_less=True)      # one-hot over streams, then the done bit
        acc = Signal(17, reset_less=True)
        lens = [self.lens[16 * k:16 * (k + 1)] for k in range(n)]
        length = Signal(16, reset_less=True)
        m.d.sync += length.eq(_select(step, lens, 16))
        stepping = Signal(reset_less=True)         # `length` holds step's stream's length
        with m.If(self.setup):
            m.d.sync += [step.eq(1), acc.eq(0), self.ready.eq(0), stepping.eq(0)]
        with m.Elif(step[:n].any()):
            m.d.sync += stepping.eq(1)
            with m.If(stepping):
                m.d.sync += [acc.eq(acc + length), step.eq(step << 1), stepping.eq(0)]
                for k in range(n):
                    with m.If(step[k]):
                        m.d.sync += [bases[k].eq(acc), ends[k].eq(acc + length)]
        with m.Elif(step[n]):
            m.d.sync += [self.ready.eq(1), self.total.eq(acc), step.eq(0)]
        return bases, ends


class StreamFeeder(_Sections):
    """Input buffer sections -> ``o0``, ``o1``, ... (module docstring)."""

    def __init__(self, widths: list[int], depth: int):
        members = {f"o{k}": Out(stream.Signature(int(w))) for k, w in enumerate(widths)}
        members.update(rd_addr=Out(max(1, int(depth).bit_length())), rd_data=In(8))
        super().__init__(widths, depth, members)

    def elaborate(self, platform):
        m = Module()
        n, widest = self.count, 8 * max(self.nbytes)
        bases, ends = self._setup(m)
        # data registers (set at `go` or before use) carry no reset; the flags do
        ptrs = [Signal(self.addr_width, name=f"ptr{k}", reset_less=True) for k in range(n)]
        pending = [Signal(name=f"pending{k}") for k in range(n)]   # ptr != end, registered
        full = [Signal(name=f"full{k}") for k in range(n)]
        beats = [Signal(8 * b, name=f"beat{k}", reset_less=True) for k, b in enumerate(self.nbytes)]
        running = Signal()
        cur = Signal(n, init=1)                    # one-hot: the stream the reader visits
        cursor = Signal(self.addr_width, reset_less=True)
        left = Signal(range(max(self.nbytes) + 1), reset_less=True)
        assembly = Signal(widest, reset_less=True)  # bytes enter at the top, little-endian
        for k in range(n):
            port = getattr(self, f"o{k}")
            m.d.comb += [port.valid.eq(full[k]), port.payload.eq(beats[k][:self.widths[k]])]
            m.d.sync += pending[k].eq(ptrs[k] != ends[k])
            with m.If(port.valid & port.ready):
                m.d.sync += full[k].eq(0)
        m.d.comb += self.rd_addr.eq(cursor)
        eligible = Signal()
        m.d.comb += eligible.eq((cur & ~Cat(*full) & Cat(*pending)).any())
        # the reader: one-hot state flip-flops (idle, scan, read, capture, store); its
        # conditions are flip-flops or a gate of them (`last_byte`: left == 1, registered)
        r_idle, r_scan, r_read, r_capture, r_store = (
            Signal(init=(k == 0), name=f"reader_{n}")
            for k, n in enumerate(("idle", "scan", "read", "capture", "store")))
        last_byte = Signal(reset_less=True)
        go, stop = self.go, self.stop
        m.d.sync += [
            r_idle.eq(stop | r_idle & ~go),
            r_scan.eq(~stop & (r_idle & go | r_scan & ~eligible | r_store)),
            r_read.eq(~stop & (r_scan & eligible | r_capture & ~last_byte)),
            r_capture.eq(~stop & r_read),          # rd_data shows cursor's byte now
            r_store.eq(~stop & r_capture & last_byte),
        ]
        with m.If(r_idle & go):
            m.d.sync += [running.eq(1), cur.eq(1)]
            m.d.sync += [ptrs[k].eq(bases[k]) for k in range(n)]
            m.d.sync += [pending[k].eq(0) for k in range(n)]   # settles next cycle
        with m.If(r_scan & eligible):
            m.d.sync += [cursor.eq(_select(cur, ptrs, self.addr_width)),
                         left.eq(_select(cur, [Const(b, left.shape()) for b in
                                               self.nbytes], len(left))),
                         last_byte.eq(_select(cur, [Const(b == 1, 1) for b in self.nbytes], 1))]
        with m.If(r_scan & ~eligible | r_store):
            m.d.sync += cur.eq(Cat(cur[-1], cur[:-1]))
        with m.If(r_capture):
            m.d.sync += [assembly.eq(Cat(assembly[8:], self.rd_data)),
                         cursor.eq(cursor + 1), left.eq(left - 1), last_byte.eq(left == 2)]
        with m.If(r_store):
            for k in range(n):
                with m.If(cur[k]):
                    m.d.sync += [beats[k].eq(assembly[widest - 8 * self.nbytes[k]:]),
                                 ptrs[k].eq(cursor), full[k].eq(1)]
        with m.If(self.stop):
            m.d.sync += [running.eq(0)] + [f.eq(0) for f in full]
        idle = Signal()
        m.d.sync += idle.eq(~Cat(*full).any() & ~Cat(*pending).any())
        self._settled(m, running, idle)
        return m


class StreamCollector(_Sections):
    """``i0``, ``i1``, ... -> output buffer sections (module docstring)."""

    def __init__(self, widths: list[int], depth: int):
        members = {}
        for k, w in enumerate(widths):
            members[f"i{k}"] = In(stream.Signature(int(w)))
            members[f"got{k}"] = Out(16)
        members.update(wr_addr=Out(max(1, int(depth).bit_length())), wr_data=Out(8),
                       wr_en=Out(1))
        super().__init__(widths, depth, members)

    def elaborate(self, platform):
        m = Module()
        n, widest = self.count, 8 * max(self.nbytes)
        bases, ends = self._setup(m)
        ptrs = [Signal(self.addr_width, name=f"wptr{k}", reset_less=True) for k in range(n)]
        room = [Signal(name=f"room{k}") for k in range(n)]
        full = [Signal(name=f"held{k}") for k in range(n)]
        beats = [Signal(8 * b, name=f"held_beat{k}", reset_less=True)
                 for k, b in enumerate(self.nbytes)]
        running = Signal()
        for k in range(n):
            port = getattr(self, f"i{k}")
            m.d.comb += port.ready.eq(~full[k] & room[k])
            with m.If(port.valid & port.ready):
                m.d.sync += [beats[k].eq(port.payload), full[k].eq(1)]
        cur = Signal(n, init=1)
        cursor = Signal(self.addr_width, reset_less=True)
        last = Signal(self.addr_width, reset_less=True)
        left = Signal(range(max(self.nbytes) + 1), reset_less=True)
        shifter = Signal(widest, reset_less=True)
        m.d.comb += [self.wr_addr.eq(cursor), self.wr_data.eq(shifter[:8])]
        # the writer: one-hot state flip-flops (idle, scan, write, store); its conditions
        # are flip-flops or a gate of them (`last_byte`: left == 1, registered ahead)
        w_idle, w_scan, w_write, w_store = (Signal(init=(k == 0), name=f"writer_{n}")
                                            for k, n in enumerate(("idle", "scan", "write",
                                                                   "store")))
        hit = Signal()
        last_byte = Signal(reset_less=True)
        m.d.comb += hit.eq((cur & Cat(*full)).any())
        go, stop = self.go, self.stop
        m.d.sync += [
            w_idle.eq(stop | w_idle & ~go),
            w_scan.eq(~stop & (w_idle & go | w_scan & ~hit | w_store)),
            w_write.eq(~stop & (w_scan & hit | w_write & ~last_byte)),
            w_store.eq(~stop & w_write & last_byte),
        ]
        with m.If(w_idle & go):
            m.d.sync += [running.eq(1), cur.eq(1)]
            m.d.sync += [ptrs[k].eq(bases[k]) for k in range(n)]
            m.d.sync += [room[k].eq(bases[k] != ends[k]) for k in range(n)]
            m.d.sync += [getattr(self, f"got{k}").eq(0) for k in range(n)]
        with m.If(w_scan & hit):
            m.d.sync += [cursor.eq(_select(cur, ptrs, self.addr_width)),
                         last.eq(_select(cur, ends, self.addr_width)),
                         shifter.eq(_select(cur, beats, widest)),
                         left.eq(_select(cur, [Const(b, left.shape()) for b in
                                               self.nbytes], len(left))),
                         last_byte.eq(_select(cur, [Const(b == 1, 1) for b in self.nbytes], 1))]
        with m.If(w_scan & ~hit | w_store):
            m.d.sync += cur.eq(Cat(cur[-1], cur[:-1]))
        with m.If(w_write):
            m.d.comb += self.wr_en.eq(1)
            m.d.sync += [cursor.eq(cursor + 1), shifter.eq(shifter >> 8), left.eq(left - 1),
                         last_byte.eq(left == 2)]
        with m.If(w_store):
            for k in range(n):
                got = getattr(self, f"got{k}")
                with m.If(cur[k]):
                    m.d.sync += [ptrs[k].eq(cursor), room[k].eq(cursor != last),
                                 full[k].eq(0), got.eq(got + 1)]
        with m.If(self.stop):
            m.d.sync += [running.eq(0)] + [f.eq(0) for f in full] + [r.eq(0) for r in room]
        idle = Signal()
        m.d.sync += idle.eq(~Cat(*full).any() & ~Cat(*room).any())
        self._settled(m, running, idle)
        return m
