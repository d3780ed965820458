"""The skid buffer of the stream-pipeline idiom (``rtl_gen.pipeline``): registered ready."""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """A two-entry stream register: registered ``i.ready`` toward the producer, registered
    ``o.valid`` / ``o.payload`` toward the consumer, and no combinational path from either
    side to the other (``o.ready`` reaches only flip-flops).

    Ports: ``i`` (In stream of ``shape``), ``o`` (Out stream of ``shape``).
    Latency: 1 cycle (``i`` accepted to ``o`` valid). Throughput: one beat per cycle.
    Capacity: 2 beats (``main_valid``: the output register, ``skid_valid``: the skid register).
    """

    LATENCY = 1

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        main = Signal(name="main_valid")  # o holds a beat
        skid = Signal(name="skid_valid")  # the skid register holds a beat (i is not ready)
        skid_data = Signal.like(self.o.payload, name="skid_payload")
        m.d.comb += [self.i.ready.eq(~skid), self.o.valid.eq(main)]
        accepted = self.i.valid & ~skid
        with m.If(skid):
            with m.If(self.o.ready):  # the skid beat moves to the output
                m.d.sync += [self.o.payload.eq(skid_data), main.eq(1), skid.eq(0)]
        with m.Elif(accepted & main & ~self.o.ready):  # output busy: the beat waits in the skid
            m.d.sync += [skid_data.eq(self.i.payload), skid.eq(1)]
        with m.Elif(accepted):
            m.d.sync += [self.o.payload.eq(self.i.payload), main.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += main.eq(0)
        return m
