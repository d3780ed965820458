"""A small 8N1 UART (receiver and transmitter) with byte streams, for the board host link.

No Amaranth UART is installable from PyPI (``amaranth-stdio`` there is a name placeholder),
so this one is ours; ``tests/test_board.py`` checks it in Amaranth's simulator (random bytes,
baud mismatch of a few per cent, glitches, framing errors) and the board bench checks it
against ``cocotbext-uart`` under Verilator.

Contract
--------
Both halves count ``divisor`` clock cycles per bit (``divisor = round(clk_hz / baud)``,
:func:`uart_divisor`; at least 4). Line idle is high; a frame is one low start bit, 8 data
bits LSB first and one high stop bit.

:class:`UARTReceiver`: ``line`` passes two synchroniser flip-flops; a falling edge starts a
frame, the start bit is re-checked half a bit later (a shorter low glitch is ignored), every
data bit is sampled in the middle of its bit time, the stop bit likewise. A good frame puts
its byte on ``o`` (``valid`` until taken; the stream holds one byte). A low stop bit pulses
``error`` for one cycle and drops the byte (the receiver then waits for the line to go
high); a byte finished while the previous one is still untaken is dropped and also pulses
``error`` (overrun). Latency: about 9.5 bit times from the start edge to ``o.valid``.

:class:`UARTTransmitter`: takes a byte from ``i`` whenever it is idle (``i.ready`` high for
one cycle at a time between frames) and shifts the 10-bit frame out on ``line``
(registered). Throughput: one byte per ``10 * divisor`` cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "uart_divisor"]


def uart_divisor(clk_hz: float, baud: int, *, tolerance: float = 0.02) -> int:
    """Clock cycles per bit; ``ValueError`` when the rounding error exceeds ``tolerance``."""
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"a {clk_hz / 1e6:g} MHz clock is too slow for {baud} baud "
                         f"(needs at least 4 cycles per bit)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"{baud} baud from {clk_hz / 1e6:g} MHz is off by {100 * error:.1f} % "
                         f"(divisor {divisor}); allowed {100 * tolerance:g} %")
    return divisor


class _UARTHalf(wiring.Component):
    def __init__(self, divisor: int):
        assert int(divisor) >= 4, divisor
        self.divisor = int(divisor)
        super().__init__()


class UARTReceiver(_UARTHalf):
    """8N1 receiver: ``line`` in, bytes out on ``o`` (see the module docstring)."""

    line: In(1, init=1)
    o: Out(stream.Signature(8))
    error: Out(1)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_line = FFSynchronizer(self.line, line, init=1)
        # counters and data carry no reset (each is cleared or loaded before use), so the
        # board reset reaches only the state flip-flops
        timer = Signal(range(self.divisor), reset_less=True)
        bits = Signal(4, reset_less=True)
        shift = Signal(8, reset_less=True)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # the frame's place: one-hot flip-flops, each next value a gate of flip-flops (the
        # line, the `due` flags, `last_bit`): no state decode before any enable
        idle, start, data, stop, brk = (Signal(init=(k == 0), name=n) for k, n in enumerate(
            ("rx_idle", "rx_start", "rx_data", "rx_stop", "rx_break")))
        # the timer counts up from 0 every cycle (no enable; cleared through the flip-flops'
        # reset pin at an edge and at each sample), and `half` / `whole` are its registered
        # compares: high divisor // 2 (start bit's middle) or divisor cycles after a clear
        half, whole = Signal(reset_less=True), Signal(reset_less=True)
        edge = idle & ~line
        sample = whole & (data | stop)
        restart = half & start & ~line
        m.d.sync += [timer.eq(Mux(idle | restart | sample, 0, timer + 1)),
                     half.eq(start & (timer == self.divisor // 2 - 2)),
                     whole.eq((data | stop) & ~sample & (timer == self.divisor - 2))]
        last_bit = Signal(reset_less=True)   # bits == 7, registered (bits steps once a bit time)
        m.d.sync += last_bit.eq(bits == 7)
        m.d.sync += [
            idle.eq(idle & line | start & half & line | stop & whole & line | brk & line),
            start.eq(edge | start & ~half),
            data.eq(restart | data & ~(whole & last_bit)),
            stop.eq(data & whole & last_bit | stop & ~whole),
            brk.eq(stop & whole & ~line | brk & ~line),
        ]
        with m.If(restart):
            m.d.sync += bits.eq(0)
        with m.If(data & whole):
            m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1)]
        with m.If(stop & whole):
            with m.If(line):
                with m.If(self.o.valid & ~self.o.ready):
                    m.d.comb += self.error.eq(1)          # overrun: byte dropped
                with m.Else():
                    m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
            with m.Else():
                m.d.comb += self.error.eq(1)              # framing error
        return m


class UARTTransmitter(_UARTHalf):
    """8N1 transmitter: bytes in on ``i``, ``line`` out (see the module docstring)."""

    i: In(stream.Signature(8))
    line: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor), reset_less=True)   # loaded before use
        frame = Signal(10, reset_less=True)       # bits still to send, LSB next
        left = Signal(range(11), reset_less=True)  # how many of them
        zero, idle = Signal(init=1), Signal(init=1)   # timer == 0, left == 0: registers
        m.d.comb += self.i.ready.eq(idle & zero)
        with m.If(~zero):
            m.d.sync += [timer.eq(timer - 1), zero.eq(timer == 1)]
        with m.Elif(~idle):          # the previous bit has had its full bit time
            m.d.sync += [self.line.eq(frame[0]), frame.eq(frame[1:]), left.eq(left - 1),
                         idle.eq(left == 1), timer.eq(self.divisor - 1), zero.eq(0)]
        with m.Elif(self.i.valid):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), left.eq(10),
                         idle.eq(0)]
        return m
