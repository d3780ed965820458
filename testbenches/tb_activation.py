"""cocotb bench of the activation unit: every input code against the golden model.

Runs inside the simulator. The design point arrives as a YAML path in ``LOWBIT_CONFIG``
(the resolved ``build/<name>/config.yaml``), the seed in ``LOWBIT_SEED``.

Tests
-----
* ``every_input_with_pressure``: every input code (a 65,536-code random sample above 16
  bits) in random order with random gaps, random backpressure and random ``last`` framing.
* ``corners_at_full_rate``: extremes (min, max, 0, +-1 LSB, segment edges) with no gaps and
  no backpressure; proves one result per cycle and the documented latency. Then, with the
  output held stalled, the unit takes exactly its ``capacity`` beats, and each time one or
  two results are let out it takes as many again (every credit comes back).
* ``reset_mid_stream``: a reset while the pipeline is full; beats in flight are discarded,
  the next stream is exact.
* ``long_stalls``: the consumer stops for long random stretches.

Functional coverage (``testbenches.coverage``, checked at the end of each test, exported
beside ``results.xml``): saturation at both ends where the format reaches them, the output
stalled and stalled while ``last`` (the ``o`` monitor), the input extremes at full rate, a
reset into a busy pipeline, long stalls. A missed bin fails the test and names the bin.

Pressure: each test's ``gap`` (on ``i``) and ``stall`` (on ``o``) keyword parameters name a
setting of ``testbenches.pressure.PRESSURES``; their defaults are the suite's pressure.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from lowbit.golden_models import activation as golden
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import build_component
from lowbit.testbenches.coverage import Coverage
from lowbit.testbenches.drivers import reset_dut, seed_from_env
from lowbit.testbenches.gate import GatedPressure
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.stream_pair import attach_stream_pair

EXHAUSTIVE_MAX_BITS = 16


class Bench:
    """DUT, drivers, output monitor, golden model and scoreboard for one test; ``gap`` and
    ``stall`` name the input's and the output's pressure (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str):
        self.dut = dut
        self.config = load_design(os.environ["LOWBIT_CONFIG"])
        self.rng = random.Random(seed)
        cfg = self.config
        self.in_layout = PayloadLayout([("data", cfg.input.width, True), ("last", 1, False)])
        self.out_layout = PayloadLayout([("data", cfg.output.width, True), ("last", 1, False)])
        stall_pressure = GatedPressure(**vars(pressure(stall)))
        self.gate = stall_pressure.gate   # lets a test hold o.ready low on top of ``stall``
        attach_stream_pair(self, seed, gap, stall_pressure)

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def queue(self, codes, p_last: float = 0.05) -> None:
        """Send ``codes``; expect the golden model's outputs with the same ``last`` bits."""
        codes = np.asarray(codes, dtype=np.int64)
        expected = golden.model(self.config, codes)
        for index, (x, y) in enumerate(zip(codes.tolist(), expected.tolist())):
            last = int(index == len(codes) - 1 or self.rng.random() < p_last)
            self.source.send_nowait(self.in_layout.pack(data=x, last=last))
            self.scoreboard.expect(self.out_layout.pack(data=y, last=last), stimulus=f"x={x}")

    async def drain(self, count: int) -> None:
        """Wait for ``count`` outputs, score them in order, and start the next batch afresh."""
        await self.sink.wait_count(count, timeout_cycles=20 * count + 1000)
        self.outputs = [self.out_layout.unpack(raw)["data"] for raw in self.sink.received]
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
        self.sink.clear()
        self.scoreboard.check_done()

    def all_codes(self) -> np.ndarray:
        fmt = self.config.input
        if fmt.width <= EXHAUSTIVE_MAX_BITS:
            codes = fmt.all_values()
        else:
            codes = np.array([self.rng.randint(fmt.min_int, fmt.max_int) for _ in range(1 << 16)])
            codes = np.concatenate([codes, [fmt.min_int, fmt.max_int, 0, 1, -1]])
        return codes[np.array(self.rng.sample(range(len(codes)), len(codes)))]


def _saturating(config) -> bool:
    """Whether some input makes the output saturate (then coverage must see it)."""
    codes = config.input.all_values() if config.input.width <= EXHAUSTIVE_MAX_BITS else None
    if codes is None:
        return False
    out = golden.model(config, codes)
    return bool(np.any(out == config.output.max_int))


@cocotb.test()
async def every_input_with_pressure(dut, gap="random30", stall="random30"):
    """Every input code, shuffled, with random gaps and backpressure."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    codes = bench.all_codes()
    bench.queue(codes)
    await bench.drain(len(codes))
    outputs = bench.outputs
    out_fmt = bench.config.output
    # the saturation ends the golden model reaches over every code (none above 16 bits)
    ends = golden.model(bench.config, codes).tolist() if _saturating(bench.config) else []
    reached = [e for e, v in (("max", out_fmt.max_int), ("min", out_fmt.min_int)) if v in ends]
    cov = Coverage("tb_activation.every_input_with_pressure")
    cov.point("stall", ["stalled"])
    if reached:
        cov.point("saturation", reached)
    for end, value in (("max", out_fmt.max_int), ("min", out_fmt.min_int)):
        if end in reached and value in outputs:
            cov.sample("saturation", end)
    if bench.output.stalls:
        cov.sample("stall", "stalled")
    cov.check()
    dut._log.info("%d beats checked, %d stalled cycles", len(codes), bench.output.stalls)


@cocotb.test()
async def corners_at_full_rate(dut, gap="none", stall="none"):
    """Extremes back to back at full rate: one result per cycle after ``latency`` cycles."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    fmt = bench.config.input
    corners = [fmt.min_int, fmt.min_int + 1, -1, 0, 1, fmt.max_int - 1, fmt.max_int]
    corners += [(1 << k) for k in range(fmt.width - 1)] + [-(1 << k) for k in range(fmt.width - 1)]
    codes = np.array(corners * 4, dtype=np.int64)
    cov = Coverage("tb_activation.corners_at_full_rate")
    cov.point("input", ["min", "max", "zero"])
    cov.point("capacity", ["full", "refilled"])
    for name, value in (("min", fmt.min_int), ("max", fmt.max_int), ("zero", 0)):
        if value in codes.tolist():
            cov.sample("input", name)
    start = await _cycle_count(dut)
    bench.queue(codes)
    await bench.drain(len(codes))
    cycles = await _cycle_count(dut) - start
    latency = int(os.environ.get("LOWBIT_LATENCY", "-1"))
    if latency >= 0:
        assert cycles <= len(codes) + latency + 2, (
            f"{len(codes)} beats took {cycles} cycles; expected at most {len(codes)} + latency "
            f"{latency} + 2 (one result per cycle)")
    await refill_to_capacity(bench, cov)
    cov.check()


async def _cycle_count(dut) -> int:
    """Clock cycles since time zero (10 ns clock), read at a rising edge."""
    await RisingEdge(dut.clk)
    return int(get_sim_time(unit="ns")) // 10


@cocotb.test()
async def reset_mid_stream(dut, gap="random20", stall="random20"):
    """Reset while beats are in flight; the stream after the reset is exact."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    fmt = bench.config.input
    rng = bench.rng
    first = np.array([rng.randint(fmt.min_int, fmt.max_int) for _ in range(200)])
    bench.queue(first)
    await ClockCycles(dut.clk, rng.randint(20, 120))
    for _ in range(1000):  # reset only while a result is waiting in the pipeline
        if int(dut.o__valid.value):
            break
        await RisingEdge(dut.clk)
    cov = Coverage("tb_activation.reset_mid_stream")
    cov.point("reset", ["busy_pipeline"])
    if int(dut.o__valid.value):
        cov.sample("reset", "busy_pipeline")
    cov.check()
    bench.source.clear()
    await reset_dut(dut, dut.clk)
    # whatever left the pipeline before the reset took effect is discarded with it
    bench.sink.clear()
    bench.scoreboard.clear()
    assert not int(dut.o__valid.value), "o.valid must be low right after reset"
    second = np.array([rng.randint(fmt.min_int, fmt.max_int) for _ in range(300)])
    bench.queue(second)
    await bench.drain(len(second))


@cocotb.test()
async def long_stalls(dut, gap="random10", stall="bursty"):
    """The consumer stops for long stretches; nothing is lost, nothing repeated."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    fmt = bench.config.input
    codes = np.array([bench.rng.randint(fmt.min_int, fmt.max_int) for _ in range(500)])
    bench.queue(codes)
    await bench.drain(len(codes))
    cov = Coverage("tb_activation.long_stalls")
    cov.point("stall", ["long"])
    if bench.output.stalls > 50:
        cov.sample("stall", "long")
    cov.check()


def _capacity(config) -> int:
    """The unit's stated capacity (beats accepted and not yet delivered it can hold)."""
    unit = build_component(config)
    unit._MustUse__silence = True   # read for its attribute only, never elaborated
    return unit.capacity


async def refill_to_capacity(bench, cov) -> None:
    """Output stalled: exactly ``capacity`` beats are taken; after one or two results are
    let out, as many more (the registered ``i.ready`` gives every credit back); then the
    stream drains exact. Samples ``capacity``: ``full``, ``refilled``."""
    dut, capacity = bench.dut, _capacity(bench.config)
    fmt, rng = bench.config.input, bench.rng
    codes = np.array([rng.randint(fmt.min_int, fmt.max_int) for _ in range(capacity + 20)])
    allowed = [0]   # results the gate lets out; o.ready is low once they have left
    bench.gate.condition = lambda: len(bench.sink.received) >= allowed[0]
    sent = bench.source.sent
    bench.queue(codes)
    settle = 2 * capacity + 8   # cycles for the unit to take what it can
    await ClockCycles(dut.clk, settle)
    assert bench.source.sent - sent == capacity, (
        f"with o stalled the unit took {bench.source.sent - sent} beats; its capacity is "
        f"{capacity}")
    cov.sample("capacity", "full")
    for _ in range(4):
        allowed[0] += rng.randint(1, 2)
        await ClockCycles(dut.clk, settle)
        held = bench.source.sent - sent - len(bench.sink.received)
        assert len(bench.sink.received) == allowed[0] and held == capacity, (
            f"after {allowed[0]} results left (o stalled again) the unit holds {held} beats "
            f"of its capacity {capacity}: a credit did not come back")
    cov.sample("capacity", "refilled")
    bench.gate.condition = None
    await bench.drain(len(codes))
