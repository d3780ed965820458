"""The host bridge's transmit side: one response frame, SLIP-escaped (:mod:`fpga.bridge`).

Contract
--------
:class:`FrameSender` sends, after a ``go`` pulse, ``END  escape(cmd seq len_lo len_hi
body crc_hi crc_lo)  END`` on ``tx`` (:mod:`fpga.host_protocol`), then pulses ``done`` (a register, a cycle after the last byte is taken).
The body is ``length`` bytes: the first ``head_count`` from ``head`` (a list of byte-wide
values the caller keeps stable while sending), the rest read from the output buffer at
addresses 0, 1, ... through ``rd_addr``/``rd_data`` (a synchronous read port: the address
is set long before each byte is needed, since every byte waits for the UART).

Timing: the body byte is chosen by a registered index and a registered ``head_left``
counter between two registered candidates (the head byte, the buffer byte) and loaded into
a register; the CRC takes each loaded byte a cycle later from that
register, so no path runs from the buffer through the CRC.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp
from .bridge_rx import crc16_next

__all__ = ["FrameSender"]


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
        # tx_raw: a framing END, sent as is; every other byte is escaped when special
        tx_data, tx_raw, tx_full, tx_second = Signal(8), Signal(), Signal(), Signal()
        is_end, special = Signal(), Signal()       # registered with tx_data
        escape_it = special & ~tx_raw
        m.d.comb += [
            self.tx.valid.eq(tx_full),
            self.tx.payload.eq(Mux(tx_second, Mux(is_end, hp.ESC_END, hp.ESC_ESC),
                                   Mux(escape_it, hp.ESC, tx_data))),
        ]
        with m.If(self.tx.valid & self.tx.ready):
            with m.If(escape_it & ~tx_second):
                m.d.sync += tx_second.eq(1)
            with m.Else():
                m.d.sync += [tx_full.eq(0), tx_second.eq(0)]

        m.d.sync += self.done.eq(0)
        crc = Signal(16)
        crc_due = Signal()
        m.d.sync += crc_due.eq(0)
        with m.If(crc_due):
            m.d.sync += crc.eq(crc16_next(crc, tx_data))

        def load(byte, *, raw=False, with_crc=True):
            m.d.sync += [tx_data.eq(byte), tx_raw.eq(raw), tx_full.eq(1), crc_due.eq(with_crc),
                         is_end.eq(byte == hp.END), special.eq((byte == hp.END) | (byte == hp.ESC))]

        index = Signal(range(max(2, self.head_bytes)))
        head_left = Signal(range(self.head_bytes + 1))
        body_left = Signal(16)
        last_body = Signal()                       # body_left == 1, registered
        header = Signal(32)
        head = Array(self.head[8 * k:8 * (k + 1)] for k in range(self.head_bytes))
        head_byte, buf_byte = Signal(8), Signal(8)   # both registered: short load paths
        m.d.sync += [head_byte.eq(head[index]), last_body.eq(body_left == 1),
                     buf_byte.eq(self.rd_data)]
        rd_addr = Signal.like(self.rd_addr)
        m.d.comb += self.rd_addr.eq(rd_addr)
        with m.FSM(name="sender"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [crc.eq(hp.CRC_INIT), index.eq(0), rd_addr.eq(0),
                                 head_left.eq(self.head_count), body_left.eq(self.length),
                                 header.eq(Cat(self.cmd, self.seq, self.length))]
                    m.next = "START"
            with m.State("START"):
                with m.If(~tx_full):
                    load(hp.END, raw=True, with_crc=False)
                    m.d.sync += index.eq(0)
                    m.next = "HEADER"
            with m.State("HEADER"):
                with m.If(~tx_full & ~crc_due):
                    load(header[:8])
                    m.d.sync += [header.eq(header >> 8), index.eq(index + 1)]
                    with m.If(index == 3):
                        m.d.sync += index.eq(0)
                        m.next = "BODY"             # every response has a body
            with m.State("BODY"):
                with m.If(~tx_full & ~crc_due):
                    with m.If(head_left != 0):
                        load(head_byte)
                        m.d.sync += [head_left.eq(head_left - 1), index.eq(index + 1)]
                    with m.Else():
                        load(buf_byte)
                        m.d.sync += rd_addr.eq(rd_addr + 1)
                    m.d.sync += body_left.eq(body_left - 1)
                    with m.If(last_body):
                        m.next = "CRC_HI"
                    with m.Else():
                        m.next = "SETTLE"
            with m.State("SETTLE"):       # head_byte, last_body follow the counters; the
                m.next = "SETTLE2"          # buffer shows rd_addr's byte, buf_byte next
            with m.State("SETTLE2"):
                m.next = "BODY"
            with m.State("CRC_HI"):
                with m.If(~tx_full & ~crc_due):
                    load(crc[8:], with_crc=False)
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                with m.If(~tx_full):
                    load(crc[:8], with_crc=False)
                    m.next = "STOP"
            with m.State("STOP"):
                with m.If(~tx_full):
                    load(hp.END, raw=True, with_crc=False)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~tx_full):
                    m.d.sync += self.done.eq(1)      # registered pulse
                    m.next = "IDLE"
        return m

