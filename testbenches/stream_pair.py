"""The drivers of a bench whose block has one input stream ``i`` and one output stream ``o``
(activation, softmax, Hadamard): a source with the input's pressure, a sink with the
output's, a scoreboard and a passive monitor of ``o``, and the 10 ns clock.

A bench class sets ``dut``, ``rng`` (seeded), ``in_layout`` and ``out_layout``, then calls
:func:`attach_stream_pair`. The random draws happen in the order the benches always made
them (source pauses, then sink pauses), so a printed seed replays the same run."""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock

from lowbit.testbenches.drivers import StreamSink, StreamSource
from lowbit.testbenches.monitor import StreamMonitor
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.scoreboard import Scoreboard


def attach_stream_pair(bench, seed: int, gap: str, stall: str, *, data: str = "data") -> None:
    """Give ``bench`` its ``source``, ``sink``, ``scoreboard`` (mismatches described as
    ``<data>=.. last=..``) and ``output`` monitor, and start the clock. ``gap`` and ``stall``
    name the input's and the output's pressure (:data:`pressure.PRESSURES`)."""
    dut, rng = bench.dut, bench.rng

    def describe(raw: int) -> str:
        fields = bench.out_layout.unpack(raw)
        return f"{data}={fields['data']} last={fields['last']}"

    bench.source = StreamSource(dut, "i", dut.clk, pause=pressure(gap).pauses(rng, seed, 2))
    bench.sink = StreamSink(dut, "o", dut.clk, pause=pressure(stall).pauses(rng, seed))
    bench.scoreboard = Scoreboard("o", fmt=describe)
    bench.output = StreamMonitor(dut, "o", dut.clk, layout=bench.out_layout)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
