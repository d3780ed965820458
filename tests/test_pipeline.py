"""The stream-pipeline idiom (rtl_gen.pipeline) in Amaranth's simulator and under SymbiYosys.

* ``FreePipeline.add`` / ``mul``: split adders (registered carries, alternating polarity)
  and fabric multiplies are exact for random operands, signed and unsigned.
* ``CreditQueue`` behind a free-running pipeline, and ``SkidBuffer``: every beat arrives,
  in order, under random input gaps and output backpressure; one beat per cycle when the
  consumer is always ready (the latency and capacity the docstrings state).
* The formal stream rules (``testbenches.formal``) of the credit-queue composition and of
  the skid buffer, with their capacities as the bound.
"""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from lowbit.rtl_gen.pipeline import CreditQueue, FreePipeline, SkidBuffer
from lowbit.testbenches.formal import prove_stream_protocol, stall_pipeline_invariant


def _drive(m, inputs, pairs, stages, out) -> list:
    """Apply one pair of operands per cycle to ``inputs`` of the free-running pipeline ``m``
    and read ``out`` after every cycle (``stages`` more cycles drain it)."""
    got = []

    async def bench(ctx):
        for i in range(len(pairs) + stages):
            if i < len(pairs):
                for signal, value in zip(inputs, pairs[i]):
                    ctx.set(signal, value)
            await ctx.tick()
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def _run_adder(wa, wb, width, chunk, *, carry_in=0, invert=False, signed_a=True, signed_b=True):
    rng = random.Random(hash((wa, wb, width, chunk, carry_in, invert)))
    m = Module()
    a = Signal(signed(wa) if signed_a else wa)
    b = Signal(signed(wb) if signed_b else wb)
    pipe = FreePipeline(m, 1)
    s = pipe.stage("in", a=a, b=b)
    total, _ = pipe.add("x", s.a, s.b, width, chunk, carry_in=carry_in, invert=invert)
    assert pipe.stages == 1 + FreePipeline.add_stages(width, chunk)
    out = Signal(width)
    m.d.comb += out.eq(total)

    def draw(w, is_signed):
        return rng.randrange(-(1 << (w - 1)), 1 << (w - 1)) if is_signed else rng.randrange(1 << w)

    pairs = [(draw(wa, signed_a), draw(wb, signed_b)) for _ in range(80)]
    got = _drive(m, (a, b), pairs, pipe.stages, out)
    for i, (x, y) in enumerate(pairs):
        expected = x + y + carry_in
        expected = (~expected if invert else expected) % (1 << width)
        assert got[i + pipe.stages - 1] == expected, (x, y)


@pytest.mark.parametrize("wa, wb, width, chunk, carry_in, invert", [
    (8, 8, 9, 9, 0, False), (8, 8, 9, 4, 0, False), (8, 8, 9, 3, 1, False),
    (12, 8, 13, 6, 1, False), (12, 8, 13, 6, 0, True), (16, 16, 17, 5, 1, True),
    (20, 15, 21, 12, 0, True), (7, 7, 8, 2, 1, True),
])
def test_split_adder_is_exact(wa, wb, width, chunk, carry_in, invert):
    _run_adder(wa, wb, width, chunk, carry_in=carry_in, invert=invert)


def test_split_adder_unsigned_operands():
    _run_adder(10, 1, 10, 4, signed_a=False, signed_b=False)


@pytest.mark.parametrize("ub", [1, 2, 3, 5])
def test_multiply_is_exact(ub):
    rng = random.Random(ub)
    m = Module()
    a, u = Signal(signed(9)), Signal(ub)
    pipe = FreePipeline(m, 1)
    s = pipe.stage("in", a=a, u=u)
    product, _ = pipe.mul("p", s.a, s.u, 4)
    out = Signal(signed(9 + ub + 1))
    m.d.comb += out.eq(product)
    pairs = [(rng.randrange(-256, 256), rng.randrange(1 << ub)) for _ in range(60)]
    got = _drive(m, (a, u), pairs, pipe.stages, out)
    assert [got[i + pipe.stages - 1] for i in range(len(pairs))] == [x * y for x, y in pairs]


class _Free(wiring.Component):
    """A free-running ``stages``-deep pipeline (``x + 1`` per stage) landing in a
    ``CreditQueue`` of ``stages + CreditQueue.LATENCY`` credits: the composition of the
    module docstring. ``latency`` = ``capacity`` = ``credits``; ``registered``: the queue's
    registered ``admit``, two credits more (``capacity`` = ``latency + 2``)."""

    def __init__(self, stages: int = 3, registered: bool = False):
        self.stages, self.registered = stages, registered
        self.latency = stages + CreditQueue.LATENCY
        self.capacity = self.latency + 2 * registered
        super().__init__({"i": In(stream.Signature(signed(8))), "o": Out(stream.Signature(signed(8)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = CreditQueue(signed(8), credits=self.capacity, registered=self.registered)
        m.d.comb += [self.i.ready.eq(queue.admit), queue.accept.eq(self.i.valid & queue.admit)]
        pipe = FreePipeline(m, queue.accept)
        value = self.i.payload
        for k in range(self.stages):
            value = pipe.stage(f"s{k}", x=(value + 1)[:8]).x
        m.d.comb += [queue.w.valid.eq(pipe.valid), queue.w.payload.eq(value)]
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        return m


def _stream(dut, beats, *, gaps, stalls, seed, offset):
    rng = random.Random(seed)
    received, first_valid = [], None

    async def bench(ctx):
        nonlocal first_valid
        queue, cycle = list(beats), 0
        while len(received) < len(beats):
            valid = bool(queue) and rng.random() >= gaps
            ctx.set(dut.i.valid, valid)
            if queue:
                ctx.set(dut.i.payload, queue[0])
            ctx.set(dut.o.ready, rng.random() >= stalls)
            _, _, i_valid, i_ready, o_valid, o_ready, payload = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload)
            if i_valid and i_ready:
                queue.pop(0)
            if o_valid and first_valid is None:
                first_valid = cycle
            if o_valid and o_ready:
                received.append(payload)
            cycle += 1
            assert cycle < 40 * len(beats) + 100, "stream stalled"
        return cycle

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    cycles = []

    async def wrapper(ctx):
        cycles.append(await bench(ctx))

    sim.add_testbench(wrapper)
    sim.run()
    assert received == [(b + offset + 128) % 256 - 128 for b in beats]
    return cycles[0], first_valid


@pytest.mark.parametrize("factory, offset", [(lambda: _Free(3), 3), (lambda: _Free(1), 1),
                                             (lambda: _Free(3, True), 3), (lambda: _Free(1, True), 1),
                                             (lambda: SkidBuffer(signed(8)), 0)])
def test_streams_in_order_under_pressure(factory, offset):
    beats = [random.Random(1).randrange(-128, 128) for _ in range(300)]
    for seed in range(3):
        _stream(factory(), beats, gaps=0.3, stalls=0.4, seed=seed, offset=offset)


@pytest.mark.parametrize("factory, offset, latency", [(lambda: _Free(3), 3, 3 + CreditQueue.LATENCY),
                                                      (lambda: _Free(3, True), 3, 3 + CreditQueue.LATENCY),
                                                      (lambda: SkidBuffer(signed(8)), 0, SkidBuffer.LATENCY)])
def test_full_rate_and_latency(factory, offset, latency):
    beats = list(range(-100, 100))
    cycles, first = _stream(factory(), beats, gaps=0, stalls=0, seed=0, offset=offset)
    assert first == latency
    assert cycles == len(beats) + latency


@pytest.mark.parametrize("registered", [False, True])
def test_credit_queue_stream_rules_proven(registered, tmp_path):
    capacity = 2 + CreditQueue.LATENCY + 2 * registered  # _Free(2, registered).capacity
    # registered admit: the stronger invariant of CreditQueue (no hole in the thermometer)
    invariant = CreditQueue.invariant if registered else stall_pipeline_invariant
    result = prove_stream_protocol(lambda: _Free(2, registered), max_in_flight=capacity,
                                   invariant=invariant, workdir=tmp_path)
    assert result.passed, result.summary()
    assert {p.status for p in result.properties.values()} == {"proven", "covered"}


def test_skid_buffer_stream_rules_proven(tmp_path):
    def occupancy(internals, in_flight):
        main, = internals.signals("main_valid")
        skid, = internals.signals("skid_valid")
        return in_flight == main + skid

    result = prove_stream_protocol(lambda: SkidBuffer(signed(8)), max_in_flight=2,
                                   invariant=occupancy, workdir=tmp_path)
    assert result.passed, result.summary()
    assert {p.status for p in result.properties.values()} == {"proven", "covered"}
