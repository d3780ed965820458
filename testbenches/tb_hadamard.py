"""cocotb bench of the Hadamard rotation unit: whole vectors against the golden model.

Runs inside the simulator. The design point arrives as a YAML path in ``LOWBIT_CONFIG``
(the resolved ``build/<name>/config.yaml``), the seed in ``LOWBIT_SEED``, the unit's
latency in ``LOWBIT_LATENCY``.

Tests
-----
* ``random_vectors_with_pressure``: random vectors (uniform codes, and vectors of a few
  large values among small ones) with random input gaps and random backpressure.
* ``corners_at_full_rate``: all max, all min, alternating max/min, min/max, an impulse at
  either end, back to back with no gaps and no backpressure; proves one element per cycle
  (``M`` vectors in ``M N + latency + 2`` cycles) and every result's ``last``.
* ``reset_mid_vector``: a reset while a vector is partly sent and results are leaving; the
  beats in flight are discarded, and the vectors after the reset are exact (the unit's
  block positions restart).
* ``long_stalls``: the consumer stops for long stretches while vectors stream in, and is
  held stopped whenever a vector's ``last`` result is about to leave (the skid must hold it).

Functional coverage (``testbenches.coverage.hadamard_points``: declared bins, checked at
the end of each test, exported beside ``results.xml``): input elements at both extremes,
results at both exact output bounds, every rounding case of the normalisation shift the
config has (exact, below / above half, ties kept even and rounded to even: vectors whose
first result takes each one), vectors back to back on ``i`` and ``o`` (corners at full
rate), the output stalled, stalled for long and stalled on ``last``, a reset with a
vector partly sent and results in flight. A missed bin fails the test and names it.

Every drain's timeout scales with the beats queued (``20 x beats + 2 x latency + 2000``
cycles). Pressure: each test's ``gap`` (on ``i``) and ``stall`` (on ``o``) keyword
parameters name a setting of ``testbenches.pressure.PRESSURES``.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import hadamard as golden
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.coverage import hadamard_points, rounding_case
from lowbit.testbenches.drivers import reset_dut, seed_from_env
from lowbit.testbenches.handles import reader
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.gate import GatedPressure
from lowbit.testbenches.monitor import BeatEdges
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.stream_pair import attach_stream_pair

#: about this many elements per random test (at least 4 vectors)
ELEMENTS = 4096


class Bench:
    """DUT, drivers, output monitor, golden model and scoreboard for one test."""

    def __init__(self, dut, seed: int, gap: str, stall: str, test: str, points=()):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.latency = int(os.environ.get("LOWBIT_LATENCY", "0"))
        self.rng = random.Random(seed)
        self.n = cfg.length
        self.lo, self.hi = -(1 << (cfg.width - 1)), (1 << (cfg.width - 1)) - 1
        self.in_layout = PayloadLayout([("data", cfg.width, True), ("last", 1, False)])
        self.out_layout = PayloadLayout([("data", cfg.out_width, True), ("last", 1, False)])
        stall_pressure = GatedPressure(**vars(pressure(stall)))
        self.gate = stall_pressure.gate
        attach_stream_pair(self, seed, gap, stall_pressure)
        self.queued = 0
        self.cov = hadamard_points(cfg, f"tb_hadamard.{test}", points)
        self.bounds = golden.output_bounds(cfg.width, cfg.log2_length, cfg.shift)

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def random_vectors(self, count: int) -> np.ndarray:
        """Uniform codes, and (every third vector) a few extremes among small values."""
        rng, n = self.rng, self.n
        vectors = []
        for v in range(count):
            if v % 3 == 2:
                x = [rng.randint(-3, 3) for _ in range(n)]
                for _ in range(rng.randint(1, 4)):
                    x[rng.randrange(n)] = rng.choice([self.lo, self.hi])
            else:
                x = [rng.randint(self.lo, self.hi) for _ in range(n)]
            vectors.append(x)
        return np.array(vectors, dtype=np.int64)

    def corner_vectors(self) -> np.ndarray:
        n, lo, hi = self.n, self.lo, self.hi
        impulse = [0] * n
        impulse_end = [0] * (n - 1) + [lo]
        impulse[0] = hi
        return np.array([[hi] * n, [lo] * n, [hi, lo] * (n // 2), [lo, hi] * (n // 2),
                         impulse, impulse_end, [hi] * (n // 2) + [lo] * (n // 2)], dtype=np.int64)

    def rounding_vectors(self) -> np.ndarray:
        """Vectors whose first result ``sum(x)`` takes each remainder of the normalisation
        (0, 1, half, half + 1 below ``2**shift``) over an even and an odd floor quotient
        (-2 and -1: the sums lie in ``[-2**(shift+1), 0)``, which ``N`` elements of at
        least 2 bits reach, as ``shift <= n``); none when ``shift`` is 0."""
        s = self.config.shift
        if s == 0:
            return np.zeros((0, self.n), dtype=np.int64)
        remainders = sorted({r for r in (0, 1, 1 << (s - 1), (1 << (s - 1)) + 1) if r < 1 << s})
        vectors = []
        for q in (-2, -1):
            for r in remainders:
                rest, x = (q << s) + r, []
                for _ in range(self.n):
                    x.append(max(self.lo, min(self.hi, rest)))
                    rest -= x[-1]
                assert rest == 0
                vectors.append(x)
        return np.array(vectors, dtype=np.int64)

    def sample(self, vectors: np.ndarray, expected: np.ndarray) -> None:
        """Sample the value bins the test declared (their results are checked in order)."""
        cov = self.cov
        if cov.declares("input"):
            for end, value in (("min", self.lo), ("max", self.hi)):
                if (vectors == value).any():
                    cov.sample("input", end)
        if cov.declares("output"):
            for end, value in zip(("min", "max"), self.bounds):
                if (expected == value).any():
                    cov.sample("output", end)
        if cov.declares("rounding"):
            for value in set(golden.wht(vectors).ravel().tolist()):
                cov.sample("rounding", rounding_case(value, self.config.shift))

    def queue(self, vectors) -> None:
        """Send whole vectors; expect the golden model's results, ``last`` on every N-th."""
        vectors = np.asarray(vectors, dtype=np.int64)
        expected = golden.model(self.config, vectors)
        self.sample(vectors, expected)
        for v, (x, y) in enumerate(zip(vectors.tolist(), expected.tolist())):
            for j in range(self.n):
                last = int(j == self.n - 1)
                self.source.send_nowait(self.in_layout.pack(data=x[j], last=last))
                self.scoreboard.expect(self.out_layout.pack(data=y[j], last=last),
                                       stimulus=f"vector {v} element {j}, x={x[j]}")
        self.queued += vectors.size

    async def drain(self) -> None:
        """Wait for every queued result, score them in order, start the next batch afresh."""
        count = self.queued
        await self.sink.wait_count(count, timeout_cycles=20 * count + 2 * self.latency + 2000)
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
        self.sink.clear()
        self.queued = 0
        self.scoreboard.check_done()


def vectors_for(bench) -> int:
    return max(4, ELEMENTS // bench.n)


class HoldLast:
    """A ``testbenches.gate.Gate`` condition: pause the consumer whenever the next result to leave is a
    vector's last, until that last result has been presented and refused once (so every
    vector's last is seen stalled, whatever the seed). Called by the sink once per edge,
    after it took that edge's beat, to decide ``ready`` for the next edge."""

    def __init__(self, bench):
        self.received, self.n = bench.sink.received, bench.n
        self.valid = reader(bench.dut.o__valid)
        self.holding = self.done = -1   # the vector held / the last one whose last stalled

    def __call__(self) -> bool:
        count = len(self.received)
        vector = count // self.n
        if count % self.n != self.n - 1 or vector == self.done:
            return False
        if vector == self.holding and self.valid():   # refused at this edge: release
            self.done = vector
            return False
        self.holding = vector
        return True


@cocotb.test()
async def random_vectors_with_pressure(dut, gap="random30", stall="random30"):
    """Random vectors with random gaps and backpressure."""
    bench = Bench(dut, seed_from_env(), gap, stall, "random_vectors_with_pressure",
                  ("input", "stall"))
    await bench.start()
    bench.queue(bench.random_vectors(vectors_for(bench)))
    await bench.drain()
    if bench.output.stalls:
        bench.cov.sample("stall", "stalled")
    bench.cov.check()


@cocotb.test()
async def corners_at_full_rate(dut, gap="none", stall="none"):
    """Corner vectors back to back: one element per cycle after ``latency`` cycles."""
    bench = Bench(dut, seed_from_env(), gap, stall, "corners_at_full_rate",
                  ("input", "output", "rounding", "back_to_back"))
    edges = {"input": BeatEdges(dut, "i"), "output": BeatEdges(dut, "o")}
    await bench.start()
    vectors = np.concatenate([bench.corner_vectors(), bench.rounding_vectors()])
    await RisingEdge(dut.clk)
    start = bench.sink.cycle
    bench.queue(vectors)
    await bench.drain()
    cycles = bench.sink.cycle - start
    bound = vectors.size + bench.latency + 2
    assert cycles <= bound, (f"{vectors.size} elements took {cycles} cycles; expected at most "
                             f"{vectors.size} + latency {bench.latency} + 2 (one per cycle)")
    for name, trace in edges.items():
        if trace.back_to_back(bench.n):
            bench.cov.sample("back_to_back", name)
    bench.cov.check()


@cocotb.test()
async def reset_mid_vector(dut, gap="random20", stall="random20"):
    """Reset with a vector half sent and results leaving; the vectors after it are exact."""
    bench = Bench(dut, seed_from_env(), gap, stall, "reset_mid_vector", ("reset",))
    await bench.start()
    rng, n = bench.rng, bench.n
    first = bench.random_vectors(4)
    bench.queue(first)
    # wait for the first result, a random while more, then for a vector to be partly sent
    timeout = 20 * first.size + 2 * bench.latency + 2000
    for _ in range(timeout):
        if int(dut.o__valid.value) or bench.sink.received:
            break
        await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, rng.randint(1, max(1, n // 2)))
    for _ in range(timeout):
        if bench.source.sent % n:
            break
        await RisingEdge(dut.clk)
    if bench.sink.received or int(dut.o__valid.value):
        bench.cov.sample("reset", "results_in_flight")
    if 0 < bench.source.sent < first.size and bench.source.sent % n:
        bench.cov.sample("reset", "mid_vector")
    bench.cov.check()
    bench.source.clear()
    await reset_dut(dut, dut.clk)
    bench.sink.clear()
    bench.scoreboard.clear()
    bench.queued = 0
    assert not int(dut.o__valid.value), "o.valid must be low right after reset"
    bench.queue(bench.random_vectors(3))
    await bench.drain()


@cocotb.test()
async def long_stalls(dut, gap="random10", stall="bursty"):
    """The consumer stops for long stretches, and on every vector's last result; nothing
    is lost, nothing repeated."""
    bench = Bench(dut, seed_from_env(), gap, stall, "long_stalls", ("long_stall",))
    bench.gate.condition = HoldLast(bench)
    await bench.start()
    vectors = max(3, ELEMENTS // (2 * bench.n))
    bench.queue(bench.random_vectors(vectors))
    await bench.drain()
    bench.gate.condition = None
    # every vector's last result was held back at least once (HoldLast), with last set
    assert bench.output.last_stalls >= vectors, (
        f"{bench.output.last_stalls} stalled edges showed last in {vectors} vectors held on "
        "their last result: o.last is not on every N-th result")
    if bench.output.stalls > 50:
        bench.cov.sample("long_stall", "long")
    if bench.output.last_stalls:
        bench.cov.sample("long_stall", "on_last")
    bench.cov.check()
    await ClockCycles(dut.clk, 2)
