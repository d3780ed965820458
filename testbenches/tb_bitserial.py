"""cocotb bench of the bit-serial MAC array (runs inside the simulator; design point from
``LOWBIT_CONFIG``, seed from ``LOWBIT_SEED``).

Every tile's ``y`` beat is scored against ``golden_models.bitserial.model``. Tests: random
tiles at every run-time precision and both weight encodings (signed, unsigned + zero point)
under random gaps on every input stream and random backpressure; extremes (weights all at
their most negative / largest value, activations at min/max, scales and zero points at their
ends), ternary tiles and out-of-range precision codes (0, above the maximum: clamped); the
cycle count of back-to-back tiles at full rate against the ideal ``ceil(K/L) * steps``; a reset in mid-tile; long output stalls (counted by the ``y`` monitor).
Functional coverage (``testbenches.coverage``, checked at the end of a test and exported
beside ``results.xml``; a missed bin fails naming it): every run-time precision x weight
encoding (and every activation precision in ``both_serial``), back-to-back tiles that change
precision, tiles of ``k_max``, extremes at every precision, clamped precision codes (0 and,
where the field holds one, above the maximum), ``y`` stalled, a reset mid-tile.
Each test's ``gap`` (every input stream) and ``stall`` (``y``) keyword parameters name a
setting of ``testbenches.pressure.PRESSURES``; their defaults are the suite's pressure.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import bitserial as golden
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.bitserial_beats import clamped_codes, describe_y, pack_tile
from lowbit.testbenches.coverage import Coverage
from lowbit.testbenches.drivers import StreamSink, StreamSource, reset_dut, seed_from_env
from lowbit.testbenches.monitor import StreamMonitor
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.scoreboard import Scoreboard


class Bench:
    """DUT, one source per input stream, the ``y`` sink and monitor, and the scoreboard; ``gap``
    and ``stall`` name the inputs' and the output's pressure (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.ports = ["cmd", "w", "x"] + (["s"] if cfg.scale_bits or cfg.zero_point else [])
        self.sources = {name: StreamSource(dut, name, dut.clk,
                                           pause=pressure(gap).pauses(self.rng, seed, 2 + index))
                        for index, name in enumerate(self.ports)}
        self.sink = StreamSink(dut, "y", dut.clk, pause=pressure(stall).pauses(self.rng, seed))
        self.scoreboard = Scoreboard("y", fmt=lambda raw: describe_y(cfg, raw))
        self.output = StreamMonitor(dut, "y", dut.clk)
        self.expected = 0
        self.tiles = []  # (wbits, wsigned, abits, K) of every tile queued (for coverage)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def tile(self, wbits, wsigned, abits=None, kind="random", k=None):
        cfg = self.config
        if k is None:
            k = cfg.group_size * self.rng.randint(1, min(4, cfg.k_max // cfg.group_size))
        return golden.random_tile(cfg, self.np_rng, k, wbits, wsigned, abits, kind=kind)

    def queue(self, tile, wbits_code=None, abits_code=None) -> None:
        """Send ``tile`` (its ``cmd`` precision fields as ``wbits_code`` / ``abits_code``
        when given: another code of the same clamped precision) and expect its result."""
        packed = pack_tile(self.config, tile, wbits_code, abits_code)
        for name in self.ports:
            for raw in getattr(packed, name):
                self.sources[name].send_nowait(raw)
        self.tiles.append((tile.wbits, bool(tile.wsigned), tile.abits, tile.weights.shape[1]))
        codes = "".join(f" {name} sent as {code}" for name, code in
                        (("wbits", wbits_code), ("abits", abits_code)) if code is not None)
        self.scoreboard.expect(packed.y, stimulus=f"wbits={tile.wbits} wsigned={tile.wsigned} "
                               f"abits={tile.abits} K={tile.weights.shape[1]}{codes}")
        self.expected += 1

    def coverage(self, scope: str) -> Coverage:
        """The tiles queued so far, sampled into the declared precision bins of ``scope``."""
        cfg = self.config
        cov = Coverage(f"tb_bitserial.{scope}")
        cov.cross("precision", wbits=range(1, cfg.wbits_max + 1), wsigned=[True, False])
        if cfg.mode == "both_serial":
            cov.point("abits", range(1, cfg.abits + 1))
        if cfg.wbits_max > 1:
            cov.point("back_to_back", ["precision_changed"])
        for index, (wbits, wsigned, abits, _k) in enumerate(self.tiles):
            cov.sample("precision", (wbits, wsigned))
            if cfg.mode == "both_serial":
                cov.sample("abits", abits)
            if index and cfg.wbits_max > 1 and self.tiles[index - 1][0] != wbits:
                cov.sample("back_to_back", "precision_changed")
        return cov

    async def drain(self, cycles_per_tile: int = 20000) -> None:
        await self.sink.wait_count(self.expected, timeout_cycles=cycles_per_tile * self.expected + 1000)
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
        self.sink.clear()
        self.expected = 0
        self.scoreboard.check_done()

    def precisions(self):
        """Every run-time (wbits, wsigned, abits) the bench sweeps."""
        cfg = self.config
        for wbits in range(1, cfg.wbits_max + 1):
            for wsigned in (True, False):
                if cfg.mode == "both_serial":
                    yield wbits, wsigned, self.rng.randint(1, cfg.abits)
                else:
                    yield wbits, wsigned, None
        if cfg.mode == "both_serial":
            for abits in range(1, cfg.abits + 1):
                yield self.rng.randint(1, cfg.wbits_max), True, abits


@cocotb.test()
async def every_precision_under_pressure(dut, gap="random30", stall="random30"):
    """Random tiles at every run-time precision, signed and unsigned, random gaps and stalls."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    repeats = 1 if bench.config.mode == "both_serial" else 2  # (which sweeps abits as well)
    for wbits, wsigned, abits in bench.precisions():
        for _ in range(repeats):
            bench.queue(bench.tile(wbits, wsigned, abits))
    await bench.drain()
    # coverage: y must have been held at least once; a few tiles are never stalled for some
    # seeds (0.7 ** tiles), so more tiles follow until it was (0.7 ** 64: never in practice)
    for wbits, wsigned, abits in list(bench.precisions()) * 8:
        if bench.output.stalls:
            break
        bench.queue(bench.tile(wbits, wsigned, abits, k=bench.config.group_size))
        await bench.drain()
    cov = bench.coverage("every_precision_under_pressure")
    cov.point("y", ["stalled"])
    if bench.output.stalls:
        cov.sample("y", "stalled")
    cov.check()


@cocotb.test()
async def extremes_and_ternary(dut, gap="none", stall="none"):
    """Extreme operands at every precision and ternary weights, back to back at full rate."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg = bench.config
    for wbits, wsigned, abits in bench.precisions():
        bench.queue(bench.tile(wbits, wsigned, abits, kind="extreme", k=cfg.k_max if wbits == cfg.wbits_max else None))
    if cfg.wbits_max >= 2:
        for _ in range(3):
            bench.queue(bench.tile(2, True, None if cfg.mode != "both_serial" else cfg.abits, kind="ternary"))
    # precisions out of range are clamped into 1..max: 0 reads as 1, a code above the
    # maximum as the maximum (the lowest and the highest such code of each field)
    clamped = []
    fields = ["wbits"] + (["abits"] if cfg.mode == "both_serial" else [])
    for field in fields:
        maximum = cfg.wbits_max if field == "wbits" else cfg.abits
        for precision in sorted({1, maximum}):
            codes = clamped_codes(cfg, field, precision)
            for code in sorted(set(codes[:1] + codes[-1:])):
                wbits = precision if field == "wbits" else bench.rng.randint(1, cfg.wbits_max)
                abits = (precision if field == "abits" else cfg.abits) \
                    if cfg.mode == "both_serial" else None
                bench.queue(bench.tile(wbits, bench.rng.random() < 0.5, abits, k=cfg.group_size),
                            **{f"{field}_code": code})
                clamped.append((field, "zero" if code == 0 else "above_max"))
    await bench.drain()
    cov = bench.coverage("extremes_and_ternary")
    cov.point("k", ["k_max"])
    if any(k == cfg.k_max for *_rest, k in bench.tiles):
        cov.sample("k", "k_max")
    for field in fields:   # the bins the field's width allows
        maximum = cfg.wbits_max if field == "wbits" else cfg.abits
        cov.point(f"{field}_clamped", ["zero"] + (["above_max"] if clamped_codes(cfg, field, maximum) else []))
    for field, kind in clamped:
        cov.sample(f"{field}_clamped", kind)
    cov.check()


@cocotb.test()
async def cycles_match_the_ideal_at_full_rate(dut, gap="none", stall="none"):
    """Back-to-back tiles take sum(ceil(K/L) * steps) cycles plus the fixed latency."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg = bench.config
    k = min(cfg.k_max, 4 * cfg.group_size)
    for wbits in sorted({1, 2, min(4, cfg.wbits_max), cfg.wbits_max}):
        abits = min(4, cfg.abits) if cfg.mode == "both_serial" else None
        tiles = [bench.tile(wbits, True, abits, k=k) for _ in range(4)]
        ideal = sum(golden.ideal_cycles(cfg, k, wbits, abits) for _ in tiles)
        await RisingEdge(dut.clk)
        start = bench.sink.cycle
        for tile in tiles:
            bench.queue(tile)
        await bench.drain()
        cycles = bench.sink.cycle - start
        latency = int(os.environ.get("LOWBIT_LATENCY", "0"))
        dut._log.info("wbits=%d: %d tiles of K=%d in %d cycles; ideal %d + latency %d",
                      wbits, len(tiles), k, cycles, ideal, latency)
        # one cycle to wake the idle sources, one to load the first command into its
        # register, the latency, and one for the sink to see y
        assert cycles <= ideal + latency + 3, (
            f"wbits={wbits}: {cycles} cycles, ideal {ideal} + latency {latency}")


@cocotb.test()
async def reset_mid_tile(dut, gap="random20", stall="random20"):
    """Reset while a tile is half consumed; the tiles after it are exact."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg = bench.config
    abits = cfg.abits if cfg.mode == "both_serial" else None
    bench.queue(bench.tile(cfg.wbits_max, True, abits, k=cfg.k_max))
    beats = golden.ideal_cycles(cfg, cfg.k_max, cfg.wbits_max, abits)
    await ClockCycles(dut.clk, bench.rng.randint(10, max(11, min(beats // 2, 60))))
    accepted = bench.sources["w"].sent
    assert 0 < accepted < beats, f"coverage: reset outside the tile ({accepted} of {beats} beats)"
    for source in bench.sources.values():
        source.clear()
    await reset_dut(dut, dut.clk)
    bench.sink.clear()
    bench.scoreboard.clear()
    bench.expected = 0
    assert not int(dut.y__valid.value), "y.valid must be low right after reset"
    for wbits, wsigned, abits in list(bench.precisions())[::3]:
        bench.queue(bench.tile(wbits, wsigned, abits))
    await bench.drain()


@cocotb.test()
async def long_output_stalls(dut, gap="random5", stall="stop_go"):
    """The consumer stops for long stretches; nothing is lost, nothing repeated."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    for _ in range(12):
        wbits = bench.rng.randint(1, min(2, bench.config.wbits_max))
        abits = 1 if bench.config.mode == "both_serial" else None
        bench.queue(bench.tile(wbits, bench.rng.random() < 0.5, abits, k=bench.config.group_size))
    await bench.drain()
    assert bench.output.stalls > 50, "coverage: no long stall happened"
