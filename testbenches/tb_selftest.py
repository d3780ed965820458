"""Self-test of the simulation infrastructure (cocotb module; runs inside the simulator).

The design under test is the small pipeline built by ``tests/test_sim_infra.py``: stream ``i``
with payload ``{data: signed(W), last: 1}``, stream ``o`` with ``{data: signed(W + 2), last: 1}``,
``o.data = 3 * i.data``, ``last`` passed through, two registered stages with a global stall.
``LOWBIT_CONFIG`` names a JSON file ``{"width": W, "beats": N, "latency": 2}``.

Tests: the edge-sampling order the drivers rely on, full throughput and latency with no
pressure, and random gaps + backpressure with a mid-stream reset against a Python scoreboard.
A deliberately broken variant of the design must fail ``test_random_pressure``.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from lowbit.testbenches.drivers import StreamSink, StreamSource, reset_dut, seed_from_env
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.pressure import random_pauses
from lowbit.testbenches.scoreboard import Scoreboard


def _config() -> dict:
    with open(os.environ["LOWBIT_CONFIG"]) as f:
        return json.load(f)


class Bench:
    """Clock, reset, drivers and scoreboard around the self-test pipeline."""

    def __init__(self, dut, rng: random.Random, *, p_gap: float = 0.0, p_stall: float = 0.0):
        cfg = _config()
        self.dut = dut
        self.width = cfg["width"]
        self.beats = cfg["beats"]
        self.latency = cfg["latency"]
        self.rng = rng
        self.in_layout = PayloadLayout([("data", self.width, True), ("last", 1, False)])
        self.out_layout = PayloadLayout([("data", self.width + 2, True), ("last", 1, False)])
        self.clock = Clock(dut.clk, 10, unit="ns")
        self.clock.start()
        dut.rst.value = 0
        self.source = StreamSource(dut, "i", dut.clk, pause=random_pauses(self.rng, p_gap))
        self.sink = StreamSink(dut, "o", dut.clk, pause=random_pauses(self.rng, p_stall))
        self.scoreboard = Scoreboard("o", fmt=lambda v: repr(self.out_layout.unpack(v)))

    def model(self, raw_in: int) -> int:
        beat = self.in_layout.unpack(raw_in)
        return self.out_layout.pack(data=3 * beat["data"], last=beat["last"])

    def random_beat(self) -> int:
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        data = self.rng.choice([lo, hi, 0, -1, self.rng.randint(lo, hi)])
        return self.in_layout.pack(data=data, last=int(self.rng.random() < 0.1))

    def send(self, payloads: list[int]) -> None:
        for p in payloads:
            self.scoreboard.expect(self.model(p), stimulus=self.in_layout.unpack(p))
            self.source.send_nowait(p)


@cocotb.test()
async def test_edge_sampling(dut):
    """The order the drivers rely on: at RisingEdge reads are pre-edge, writes land post-edge."""
    cfg = _config()
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    dut.i__valid.value = 1
    dut.o__ready.value = 1
    dut.i__payload.value = 0
    await reset_dut(dut, dut.clk)
    layout = PayloadLayout([("data", cfg["width"], True), ("last", 1, False)])
    out_layout = PayloadLayout([("data", cfg["width"] + 2, True), ("last", 1, False)])
    at_edge, mid_cycle, after_edge = [], [], []
    for k in range(12):
        await RisingEdge(dut.clk)
        at_edge.append(int(dut.o__payload.value))
        dut.i__payload.value = layout.pack(data=k + 1, last=0)  # written in the edge callback
        await ReadOnly()
        after_edge.append(int(dut.o__payload.value))
        await FallingEdge(dut.clk)
        mid_cycle.append(int(dut.o__payload.value))
    data = lambda raw: out_layout.unpack(raw)["data"]  # noqa: E731
    # A read at the edge sees the value that held during the cycle before it...
    assert at_edge[1:] == mid_cycle[:-1], (at_edge, mid_cycle)
    # ...not the one the edge produces, which ReadOnly shows.
    assert after_edge == mid_cycle, (after_edge, mid_cycle)
    assert at_edge[1:] != after_edge[1:]
    # Input written at edge k is captured by edge k+1 (not edge k): 2 stages -> seen at edge k+3.
    seen = [data(v) // 3 for v in at_edge]
    assert seen[3:] == list(range(1, 10)), seen


@cocotb.test()
async def test_full_throughput(dut):
    """No pressure: one beat per cycle after the pipeline latency; measures driver speed."""
    bench = Bench(dut, random.Random(seed_from_env()))
    await reset_dut(dut, dut.clk)
    n = bench.beats
    payloads = [bench.random_beat() for _ in range(n)]
    await RisingEdge(dut.clk)
    start_cycle = bench.sink.cycle
    wall = time.perf_counter()
    bench.send(payloads)
    await bench.sink.wait_count(n, timeout_cycles=n + 100)
    wall = time.perf_counter() - wall
    cycles = bench.sink.cycle - start_cycle
    for p in bench.sink.received:
        bench.scoreboard.observe(p)
    bench.scoreboard.check_done()
    # 1 idle-wake cycle + latency, then one beat per cycle.
    assert cycles <= n + bench.latency + 2, f"{n} beats took {cycles} cycles"
    dut._log.info(
        "throughput: %d beats in %d cycles, %.3f s wall: %.0f beats/s, %.0f cycles/s",
        n, cycles, wall, n / wall, cycles / wall,
    )


@cocotb.test()
async def test_random_pressure(dut):
    """Random gaps and backpressure, a mid-stream reset, scoreboarded against Python."""
    rng = random.Random(seed_from_env())
    # Pressure drawn from the seed, so every seed explores a different corner.
    p_gap, p_stall = rng.choice([0.1, 0.3, 0.6]), rng.choice([0.1, 0.4, 0.7])
    bench = Bench(dut, rng, p_gap=p_gap, p_stall=p_stall)
    dut._log.info("p_gap = %.2f, p_stall = %.2f", p_gap, p_stall)
    source, sink, scoreboard = bench.source, bench.sink, bench.scoreboard
    await reset_dut(dut, dut.clk)
    timeout = lambda n: 50 * n + 1000  # noqa: E731

    # Phase 1: stream, then reset while beats are in flight.
    first = [bench.random_beat() for _ in range(bench.beats // 2)]
    for p in first:
        source.send_nowait(p)
    await ClockCycles(dut.clk, rng.randint(len(first) // 4, len(first) // 2))
    source.clear()
    await reset_dut(dut, dut.clk, cycles=rng.randint(1, 3))
    accepted = source.sent
    assert 0 < accepted < len(first), f"reset landed outside the stream ({accepted} accepted)"
    for p in first[:accepted]:
        scoreboard.expect(bench.model(p), stimulus=bench.in_layout.unpack(p))
    for p in sink.received:
        scoreboard.observe(p)
    if scoreboard.mismatches:
        scoreboard.check_done()  # report the first wrong beat before anything else
    lost = accepted - len(sink.received)
    assert 0 <= lost <= bench.latency, f"{lost} beats lost to reset (pipeline holds {bench.latency})"
    scoreboard.clear()
    sink.clear()
    dut._log.info("reset after %d accepted beats, %d in flight lost", accepted, lost)

    # Phase 2: a fresh stream after reset must come through complete.
    second = [bench.random_beat() for _ in range(bench.beats - len(first))]
    start_cycle, wall = sink.cycle, time.perf_counter()
    bench.send(second)
    await sink.wait_count(len(second), timeout_cycles=timeout(len(second)))
    await source.wait_idle()
    wall = time.perf_counter() - wall
    dut._log.info(
        "under pressure: %d beats in %d cycles, %.3f s wall: %.0f beats/s, %.0f cycles/s",
        len(second), sink.cycle - start_cycle, wall, len(second) / wall,
        (sink.cycle - start_cycle) / wall,
    )
    for p in sink.received:
        scoreboard.observe(p)
    await ClockCycles(dut.clk, 20)
    assert len(sink.received) == len(second), "extra beats after the stream ended"
    scoreboard.check_done()
    assert scoreboard.matched == len(sink.received) + (accepted - lost)
