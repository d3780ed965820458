"""The host bridge's transmit side: one response frame, SLIP-escaped (:mod:`fpga.bridge`).

Contract
--------
:class:`FrameSender` sends, after a ``go`` pulse (taken while it is idle),
``END  escape(cmd seq len_lo len_hi body crc_hi crc_lo)  END`` on ``tx``
(:mod:`fpga.host_protocol`), then pulses ``done`` (a register, a cycle after the last byte is
taken). The body is ``length`` bytes: the first ``head_count`` from ``head`` (a list of
byte-wide values the caller keeps stable while sending), the rest read from the output
buffer at addresses 0, 1, ... through ``rd_addr``/``rd_data`` (a synchronous read port).

Algorithm and timing (the stream-pipeline idiom of :mod:`lowbit.rtl_gen.pipeline`: a
datapath that runs free, one registered decision):

* Where the frame is: one-hot phase flip-flops (start END, header, body, CRC high, CRC low,
  stop END, drain), and the counters (header byte, head bytes left, body bytes left,
  buffer address).
* The next byte runs free, every register loaded every cycle with no enable: the phase
  decoded into one-hot *what* flags (``what_head``/``what_buf`` also from the registered
  ``head_left != 0``), the candidate byte selected by them (an AND-OR of registered
  sources: END, the header's low byte, ``head[index]`` registered, the CRC bytes), the
  buffer byte (``rd_data`` registered) put in, and then the byte's END / ESC flags.
* ``load``, a flip-flop, is the one decision: the output register is empty (``tx`` has
  taken the last byte), the sender is active and ``SETTLE`` cycles have passed since the
  last load or ``go`` (a thermometer), so every free-running register has followed the
  counters and phase that load changed. In the ``load`` cycle the byte, its flags and the
  CRC request enter the output register, and the phase and counters step, each register's
  next value chosen by ``load`` and one registered ``what`` flag.

So no path runs from the state through comparisons into wide enables (the limit of the
earlier FSM form); the CRC takes each loaded byte a cycle later from the output register.
A byte costs ``SETTLE + 2`` cycles of the sender, hidden behind the UART's 10 bit times.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp
from .bridge_rx import crc16_next

__all__ = ["FrameSender", "SETTLE"]

#: cycles after a load before the next: the free-running byte path is 5 registers deep
SETTLE = 5


def _names(prefix, *names, widths=None, reset_less=False):
    """One-bit (or ``widths[name]``-bit) signals ``<prefix>_<name>`` as attributes."""
    widths = widths or {}
    return SimpleNamespace(**{n: Signal(widths.get(n, 1), name=f"{prefix}_{n}",
                                        reset_less=reset_less) for n in names})


class FrameSender(wiring.Component):
    """Send one response frame (module docstring)."""

    def __init__(self, head_bytes: int, buffer_bytes: int):
        self.head_bytes, self.buffer_bytes = int(head_bytes), int(buffer_bytes)
        super().__init__({
            "go": In(1), "done": Out(1),
            "cmd": In(8), "seq": In(8), "length": In(16), "head_count": In(range(head_bytes + 1)),
            "head": In(8 * self.head_bytes),
            "tx": Out(stream.Signature(8)),
            "rd_addr": Out(range(max(2, self.buffer_bytes))), "rd_data": In(8),
        })

    def elaborate(self, platform):
        m = Module()
        out = self._output_register(m)
        phase, counters = self._position(m)
        byte = self._next_byte(m, out, phase, counters)
        self._load(m, out, phase, counters, byte)
        return m

    def _output_register(self, m):
        """The byte on ``tx``: ``tx_data`` with its flags; an ESC pair for a special byte."""
        r = _names("tx", "data", "raw", "full", "second", "is_end", "special", "crc_due",
                   widths={"data": 8})
        escape_it = r.special & ~r.raw
        m.d.comb += [
            self.tx.valid.eq(r.full),
            self.tx.payload.eq(Mux(r.second, Mux(r.is_end, hp.ESC_END, hp.ESC_ESC),
                                   Mux(escape_it, hp.ESC, r.data))),
        ]
        with m.If(self.tx.valid & self.tx.ready):
            with m.If(escape_it & ~r.second):
                m.d.sync += r.second.eq(1)
            with m.Else():
                m.d.sync += [r.full.eq(0), r.second.eq(0)]
        r.crc = Signal(16)
        m.d.sync += r.crc_due.eq(0)
        with m.If(r.crc_due):
            m.d.sync += r.crc.eq(crc16_next(r.crc, r.data))
        return r

    def _position(self, m):
        """One-hot phase flip-flops and the counters, with their registered conditions."""
        phase = _names("phase", "start", "header", "body", "crc_hi", "crc_lo", "stop", "drain")
        c = _names("frame", "active")
        c.index = Signal(range(max(2, self.head_bytes)))
        c.head_left = Signal(range(self.head_bytes + 1))
        c.body_left = Signal(16)
        c.header = Signal(32)
        c.rd_addr = Signal.like(self.rd_addr)
        c.last_header, c.last_body, c.head_nz = (Signal(reset_less=True) for _ in range(3))
        m.d.comb += self.rd_addr.eq(c.rd_addr)
        m.d.sync += [c.last_header.eq(c.index == 3), c.last_body.eq(c.body_left == 1),
                     c.head_nz.eq(c.head_left != 0)]
        return phase, c

    def _next_byte(self, m, out, phase, c):
        """The free-running byte path (no enables): what -> candidate -> byte -> flags."""
        # free-running registers: no enable and no reset (they follow the phase flip-flops)
        w = _names("what", "start", "header", "head", "buf", "crc_hi", "crc_lo", "stop", "done",
                   reset_less=True)
        m.d.sync += [w.start.eq(phase.start), w.header.eq(phase.header),
                     w.head.eq(phase.body & c.head_nz), w.buf.eq(phase.body & ~c.head_nz),
                     w.crc_hi.eq(phase.crc_hi), w.crc_lo.eq(phase.crc_lo),
                     w.stop.eq(phase.stop), w.done.eq(phase.drain)]
        # head[index] in two registered steps: a byte of each group of four, then the group
        head = [self.head[8 * k:8 * (k + 1)] for k in range(self.head_bytes)]
        groups = [Signal(8, reset_less=True, name=f"head_group{j}")
                  for j in range(-(-self.head_bytes // 4))]
        for j, group in enumerate(groups):
            m.d.sync += group.eq(Array(head[4 * j:4 * j + 4])[c.index[:2]])
        head_byte, buf_byte = Signal(8, reset_less=True), Signal(8, reset_less=True)
        m.d.sync += [head_byte.eq(Array(groups)[c.index[2:]] if len(groups) > 1 else groups[0]),
                     buf_byte.eq(self.rd_data)]
        crc = out.crc
        cand = Signal(8, reset_less=True)
        use_buf, raw, with_crc = (Signal(reset_less=True) for _ in range(3))
        m.d.sync += [
            cand.eq(Mux(w.start | w.stop, hp.END, 0) | Mux(w.header, c.header[:8], 0)
                    | Mux(w.head, head_byte, 0) | Mux(w.crc_hi, crc[8:], 0)
                    | Mux(w.crc_lo, crc[:8], 0)),
            use_buf.eq(w.buf), raw.eq(w.start | w.stop),
            with_crc.eq(w.header | w.head | w.buf),
        ]
        b = _names("next", "data", "raw", "with_crc", "is_end", "special", widths={"data": 8},
                   reset_less=True)
        raw2, with_crc2 = Signal(reset_less=True), Signal(reset_less=True)
        data = Signal(8, reset_less=True)
        m.d.sync += [data.eq(Mux(use_buf, buf_byte, cand)), raw2.eq(raw), with_crc2.eq(with_crc)]
        m.d.sync += [b.data.eq(data), b.raw.eq(raw2), b.with_crc.eq(with_crc2),
                     b.is_end.eq(data == hp.END), b.special.eq((data == hp.END) | (data == hp.ESC))]
        b.what = w
        return b

    def _load(self, m, out, phase, c, b):
        """The one decision (``load``) and what it steps; ``go`` starts a frame."""
        w = b.what
        settle = Signal(SETTLE)          # thermometer: cycles since the last load / go
        load = Signal()
        m.d.sync += [settle.eq(settle >> 1),
                     load.eq(c.active & ~settle[0] & ~out.full & ~load)]
        m.d.sync += self.done.eq(0)
        with m.If(self.go & ~c.active):
            m.d.sync += [c.active.eq(1), phase.start.eq(1), settle.eq(-1),
                         out.crc.eq(hp.CRC_INIT), c.index.eq(0), c.rd_addr.eq(0),
                         c.head_left.eq(self.head_count), c.body_left.eq(self.length),
                         c.header.eq(Cat(self.cmd, self.seq, self.length))]
        with m.If(load):
            m.d.sync += settle.eq(-1)
            with m.If(w.done):
                m.d.sync += [self.done.eq(1), c.active.eq(0), phase.drain.eq(0)]
            with m.Else():
                m.d.sync += [out.data.eq(b.data), out.raw.eq(b.raw), out.full.eq(1),
                             out.crc_due.eq(b.with_crc), out.is_end.eq(b.is_end),
                             out.special.eq(b.special)]
            with m.If(w.start):
                m.d.sync += [phase.start.eq(0), phase.header.eq(1)]
            with m.If(w.header):
                m.d.sync += [c.header.eq(c.header >> 8), c.index.eq(c.index + 1)]
                with m.If(c.last_header):
                    m.d.sync += [c.index.eq(0), phase.header.eq(0), phase.body.eq(1)]
            with m.If(w.head):
                m.d.sync += [c.head_left.eq(c.head_left - 1), c.index.eq(c.index + 1)]
            with m.If(w.buf):
                m.d.sync += c.rd_addr.eq(c.rd_addr + 1)
            with m.If(w.head | w.buf):
                m.d.sync += c.body_left.eq(c.body_left - 1)
                with m.If(c.last_body):
                    m.d.sync += [phase.body.eq(0), phase.crc_hi.eq(1)]
            with m.If(w.crc_hi):
                m.d.sync += [phase.crc_hi.eq(0), phase.crc_lo.eq(1)]
            with m.If(w.crc_lo):
                m.d.sync += [phase.crc_lo.eq(0), phase.stop.eq(1)]
            with m.If(w.stop):
                m.d.sync += [phase.stop.eq(0), phase.drain.eq(1)]
