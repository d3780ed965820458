"""The host bridge's receive side: SLIP-framed bytes -> a checked frame (:mod:`fpga.bridge`).

Contract
--------
:class:`FrameReceiver` takes every byte on ``rx`` (``rx.ready`` is always high), unescapes
it, runs the CRC, counts it and stores it: bytes 0..3 are the header (``cmd``, ``seq``,
``length``), the next ``arg_bytes`` the arguments (``args``, first byte in the low bits),
the rest go to the input buffer through ``wr_*`` from address 0 (not while ``busy``). At
each ``END`` a non-empty frame is checked: CRC residue 0, size ``length + 6``, no UART
error (``rx_error``), no bad escape, no overflow of the buffer; a good frame pulses
``start`` (unless ``busy``: then it is dropped, counted as rejected and unanswered), a bad
one pulses ``frame_bad``, increments ``rejected`` and, unless ``busy``, pulses ``nak``
with ``nak_reason`` (:data:`host_protocol.REJECT_* <fpga.host_protocol.REJECT_CRC>`
flags). ``start``/``nak`` come three cycles after the ``END`` byte, from registers; ``cmd``,
``seq``, ``length`` and ``args`` hold until the next frame's bytes arrive, at most one
byte per UART character (the bridge latches them at ``start``).

Timing: one received byte is registered with its comparisons, decoded into a registered
data byte, then counted and stored; every check is a registered flag, so nothing here is longer than a 16-bit compare or increment.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp

__all__ = ["FrameReceiver", "crc16_next"]


def crc16_next(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT-FALSE register after one more byte (mirrors :func:`hp.crc16`).

    The step is linear over GF(2): each next-state bit is the XOR of the register and data
    bits whose unit vectors set it (found by running the host's :func:`hp.crc16`), i.e. a
    flat XOR per bit rather than eight chained shift/XOR stages.
    """
    inputs = Cat(Value.cast(crc)[:16], Value.cast(byte)[:8])
    columns = [hp.crc16(bytes((0,)), 1 << i) for i in range(16)]
    columns += [hp.crc16(bytes((1 << i,)), 0) for i in range(8)]
    bits = []
    for j in range(16):
        taps = [inputs[i] for i, col in enumerate(columns) if col >> j & 1]
        bit = taps[0]
        for tap in taps[1:]:
            bit = bit ^ tap
        bits.append(bit)
    return Cat(*bits)


class FrameReceiver(wiring.Component):
    """Receive, check and store one frame at a time (module docstring)."""

    def __init__(self, buffer_bytes: int, arg_bytes: int, checks: int):
        self.buffer_bytes, self.arg_bytes, self.checks = int(buffer_bytes), int(arg_bytes), checks
        self.max_pos = hp.HEADER_BYTES + self.arg_bytes + self.buffer_bytes
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_error": In(1), "busy": In(1),
            "start": Out(1), "nak": Out(1), "nak_reason": Out(4),
            "frame_ok": Out(1), "frame_bad": Out(1), "rejected": Out(16),
            "cmd": Out(8), "seq": Out(8), "length": Out(16), "args": Out(max(1, 8 * arg_bytes)),
            "wr_addr": Out(range(max(2, self.buffer_bytes))), "wr_data": Out(8), "wr_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pos = Signal(range(self.max_pos + 1))
        crc = Signal(16, init=hp.CRC_INIT)
        escaped, bad_escape, uart_error, overflow = Signal(), Signal(), Signal(), Signal()
        # data registers carry no reset (the frame's flags and counters do; `end` clears
        # them), so the board's reset enters only the control logic
        expect_pos = Signal(17, reset_less=True)  # length + 6, once the length is complete
        data, data_valid, end = Signal(8, reset_less=True), Signal(), Signal()
        # stage 0: the byte and its comparisons, registered
        byte, got_byte = Signal(8, reset_less=True), Signal()
        is_end, is_esc, is_esc_end, is_esc_esc = (Signal(reset_less=True) for _ in range(4))
        m.d.comb += self.rx.ready.eq(1)
        m.d.sync += [end.eq(0), data_valid.eq(0)]   # stage 1: the unescaped byte, registered
        m.d.sync += [byte.eq(self.rx.payload), got_byte.eq(self.rx.valid),
                     is_end.eq(self.rx.payload == hp.END), is_esc.eq(self.rx.payload == hp.ESC),
                     is_esc_end.eq(self.rx.payload == hp.ESC_END),
                     is_esc_esc.eq(self.rx.payload == hp.ESC_ESC)]
        with m.If(got_byte):
            with m.If(is_end):
                m.d.sync += end.eq(1)       # the frame's checks are registered by now
            with m.Elif(escaped):
                m.d.sync += escaped.eq(0)
                with m.If(is_esc_end | is_esc_esc):
                    m.d.sync += [data_valid.eq(1), data.eq(Mux(is_esc_end, hp.END, hp.ESC))]
                with m.Else():
                    m.d.sync += bad_escape.eq(1)
            with m.Elif(is_esc):
                m.d.sync += escaped.eq(1)
            with m.Else():
                m.d.sync += [data_valid.eq(1), data.eq(byte)]
        with m.If(self.rx_error):
            m.d.sync += uart_error.eq(1)

        # where the byte goes: registered flags, advanced with pos
        at_max, in_header, in_args = Signal(), Signal(init=1), Signal()
        head_step = Signal(4, init=1)            # one-hot over header bytes 0..3
        args_left = Signal(range(self.arg_bytes + 1))
        write_ok = Signal()
        m.d.comb += [self.wr_data.eq(data), self.wr_en.eq(data_valid & write_ok & ~at_max & ~self.busy)]
        with m.If(data_valid):
            m.d.sync += crc.eq(crc16_next(crc, data))
            with m.If(at_max):
                m.d.sync += overflow.eq(1)
            with m.Else():
                m.d.sync += [pos.eq(pos + 1), at_max.eq(pos + 1 == self.max_pos)]
            with m.If(in_header):
                m.d.sync += head_step.eq(head_step << 1)
                with m.If(head_step[0]):
                    m.d.sync += self.cmd.eq(data)
                with m.If(head_step[1]):
                    m.d.sync += self.seq.eq(data)
                with m.If(head_step[2]):
                    m.d.sync += self.length.eq(Cat(self.length[8:], data))
                with m.If(head_step[3]):
                    length = Cat(self.length[8:], data)
                    m.d.sync += [self.length.eq(length), in_header.eq(0),
                                 expect_pos.eq(length + hp.HEADER_BYTES + hp.CRC_BYTES),
                                 in_args.eq(self.arg_bytes != 0), args_left.eq(self.arg_bytes),
                                 write_ok.eq(self.arg_bytes == 0)]
            with m.Elif(in_args):
                if self.arg_bytes:
                    m.d.sync += [self.args.eq(Cat(self.args[8:], data)), args_left.eq(args_left - 1)]
                with m.If(args_left == 1):
                    m.d.sync += [in_args.eq(0), write_ok.eq(1)]
        # the buffer address steps on a stored byte: decided from a flag registered every
        # cycle (the header / argument / overflow flags change only with a byte, and the
        # next byte is a UART character away), not from those flags' decode
        to_buffer = Signal(reset_less=True)
        m.d.sync += to_buffer.eq(~in_header & ~in_args & ~at_max)
        with m.If(data_valid & to_buffer):
            m.d.sync += self.wr_addr.eq(self.wr_addr + 1)

        crc_bad, size_bad = Signal(reset_less=True), Signal(reset_less=True)   # a cycle after a byte
        m.d.sync += [crc_bad.eq(crc != 0), size_bad.eq(overflow | (pos != expect_pos))]
        reason = Cat(crc_bad, size_bad, uart_error, bad_escape) & self.checks
        nonempty = Signal(reset_less=True)
        m.d.sync += nonempty.eq((pos != 0) | bad_escape | uart_error)
        m.d.sync += [self.start.eq(0), self.nak.eq(0), self.frame_ok.eq(0), self.frame_bad.eq(0)]
        accept = Signal(reset_less=True)         # registered: reason and busy are registers
        m.d.sync += accept.eq((reason == 0) & ~self.busy)
        with m.If(end):
            m.d.sync += [pos.eq(0), crc.eq(hp.CRC_INIT), escaped.eq(0), bad_escape.eq(0),
                         uart_error.eq(0), overflow.eq(0), at_max.eq(0), in_header.eq(1),
                         head_step.eq(1), in_args.eq(0), write_ok.eq(0), self.wr_addr.eq(0),
                         expect_pos.eq(0)]
            with m.If(nonempty):
                with m.If(accept):
                    m.d.sync += [self.start.eq(1), self.frame_ok.eq(1)]
                with m.Else():
                    m.d.sync += [self.frame_bad.eq(1), self.rejected.eq(self.rejected + 1)]
                    with m.If(~self.busy):
                        m.d.sync += [self.nak.eq(1), self.nak_reason.eq(reason)]
        return m
