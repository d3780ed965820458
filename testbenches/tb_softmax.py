"""cocotb bench of the streaming softmax unit: rows of scores against the golden model.

Runs inside the simulator. The design point arrives as a YAML path in ``LOWBIT_CONFIG``
(the resolved ``build/<name>/config.yaml``), the seed in ``LOWBIT_SEED``.

Tests
-----
* ``random_rows_with_pressure``: rows of random length 1..n_max (narrow, wide-spread and
  full-range scores; random masks where the design has them) with random gaps and random
  backpressure.
* ``corner_rows``: all equal, one huge, all at the minimum, all at the maximum, length 1,
  length n_max, a row longer than n_max (cut at n_max), all masked but one, all masked.
* ``full_rate_throughput``: consecutive rows with no gaps and no backpressure must take at
  most ``sum(max(n, row_overhead)) + first_output_latency + passes max(n)`` cycles, and the
  input is never refused over rows of ``n >= row_overhead`` (one beat per cycle, no bubble); a
  lone row's first output comes ``passes n + first_output_latency`` cycles after its first
  input beat (``passes``: 2 with the row buffer, 1 with the online max).
* ``reset_mid_row``: a reset while a row is half in and others are in flight; everything
  after the reset is exact.
* ``long_stalls``: the consumer stops for long random stretches.

Functional coverage (``testbenches.coverage``: declared bins, checked at the end of a test
and exported beside ``results.xml``; a missed bin fails naming it): stalled output cycles,
saturated outputs (length-1 rows of a UQ0.x output), row lengths 1 and n_max, rows cut at
n_max, masked beats, rows all masked and all masked but one (designs with a mask). Stalls on ``o``
and refused input cycles on ``i`` come from the stream monitors.

Pressure: each test's ``gap`` (on ``i``) and ``stall`` (on ``o``) keyword parameters name a
setting of ``testbenches.pressure.PRESSURES``; their defaults are the suite's pressure.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.softmax import input_layout, timing
from lowbit.testbenches.coverage import Coverage
from lowbit.testbenches.drivers import reset_dut, seed_from_env
from lowbit.testbenches.monitor import StreamMonitor
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.stream_pair import attach_stream_pair


class Bench:
    """DUT, drivers, stream monitors, golden model and scoreboard for one test; ``gap`` and
    ``stall`` name the input's and the output's pressure (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.constants = golden.constants_of(cfg)
        self.rng = random.Random(seed)
        self.in_layout = PayloadLayout.from_struct(input_layout(cfg))
        self.out_layout = PayloadLayout([("data", cfg.output.width, False), ("last", 1, False)])
        attach_stream_pair(self, seed, gap, stall, data="p")
        self.expected = 0
        self.input = StreamMonitor(dut, "i", dut.clk)  # its stalls: cycles the input was refused
        self.saturated = self.cut_rows = self.masked_beats = 0
        self.rows = []  # (length, masked beats) of every row the unit sees (for coverage)

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def send_row(self, x, mask=None, last_at_end: bool = True) -> None:
        """Send one row (cut into rows of n_max by the design if longer); expect the golden
        model's outputs, ``last`` on each row's final beat."""
        cfg = self.config
        x = [int(v) for v in x]
        mask = [bool(b) for b in mask] if mask is not None and cfg.mask else [False] * len(x)
        last = [0] * len(x)
        if last_at_end:
            last[-1] = 1
        for start, stop in golden.split_rows(x, last, cfg.n_max):
            self.cut_rows += stop - start == cfg.n_max and not last[stop - 1]
            out = golden.row_model(self.constants, x[start:stop], mask[start:stop])
            self.rows.append((stop - start, sum(mask[start:stop])))
            for j, p in enumerate(out.tolist()):
                at = start + j
                self.scoreboard.expect(self.out_layout.pack(data=p, last=int(at == stop - 1)),
                                       stimulus=f"row[{start}:{stop}] beat {j}: x={x[at]} mask={mask[at]}")
                self.saturated += p == cfg.output.max_int
            self.expected += stop - start
        for xi, mi, li in zip(x, mask, last):
            fields = {"data": xi, "last": li}
            if cfg.mask:
                fields["mask"] = int(mi)
            self.masked_beats += mi
            self.source.send_nowait(self.in_layout.pack(**fields))

    async def drain(self) -> None:
        """Wait for every expected output, score them in order, and start afresh."""
        count = self.expected
        await self.sink.wait_count(count, timeout_cycles=40 * count + 2000)
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
        self.sink.clear()
        self.expected = 0
        self.scoreboard.check_done()

    def random_row(self, n: int | None = None):
        cfg, rng = self.config, self.rng
        fmt = cfg.input
        n = n or rng.randint(1, cfg.n_max)
        kind = rng.choice(("full", "narrow", "wide"))
        if kind == "full":
            x = [rng.randint(fmt.min_int, fmt.max_int) for _ in range(n)]
        elif kind == "narrow":  # within a few units: many comparable probabilities
            centre, spread = rng.randint(fmt.min_int, fmt.max_int), 1 << (fmt.frac_bits + 1)
            x = [min(max(centre + rng.randint(-spread, spread), fmt.min_int), fmt.max_int) for _ in range(n)]
        else:  # a few large scores over a low floor
            x = [rng.randint(fmt.min_int, fmt.min_int + (1 << fmt.frac_bits)) for _ in range(n)]
            for _ in range(rng.randint(1, 3)):
                x[rng.randrange(n)] = rng.randint(fmt.max_int // 2, fmt.max_int)
        mask = [rng.random() < 0.2 for _ in range(n)] if cfg.mask and rng.random() < 0.5 else None
        return x, mask


@cocotb.test()
async def random_rows_with_pressure(dut, gap="random30", stall="random30"):
    """Random rows with random gaps and backpressure."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    for _ in range(60):
        bench.send_row(*bench.random_row())
    await bench.drain()
    cov = Coverage("tb_softmax.random_rows_with_pressure")
    cov.point("output", ["stalled"] + (["masked_beat"] if bench.config.mask else []))
    if bench.output.stalls:
        cov.sample("output", "stalled")
    if bench.masked_beats:
        cov.sample("output", "masked_beat")
    cov.check()


@cocotb.test()
async def corner_rows(dut, gap="random10", stall="random10"):
    """Extreme rows, each under light pressure."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg, rng = bench.config, bench.rng
    fmt, n = cfg.input, cfg.n_max
    bench.send_row([rng.randint(fmt.min_int, fmt.max_int)] * n)          # all equal, n_max
    bench.send_row([fmt.min_int] * (n - 1) + [fmt.max_int])                # one huge
    bench.send_row([fmt.min_int] * 7)                                      # all at the minimum
    bench.send_row([fmt.max_int] * 5)                                      # all at the maximum
    for v in (fmt.min_int, 0, fmt.max_int):
        bench.send_row([v])                                                # length 1
    bench.send_row([rng.randint(fmt.min_int, fmt.max_int) for _ in range(n)])  # length n_max
    bench.send_row([rng.randint(fmt.min_int, fmt.max_int) for _ in range(n + 5)])  # cut at n_max
    bench.send_row([0, 1, -1, fmt.max_int, fmt.max_int - 1])                # ties near the top
    if cfg.mask:
        row = [rng.randint(fmt.min_int, fmt.max_int) for _ in range(9)]
        bench.send_row(row, [i != 4 for i in range(9)])                    # all masked but one
        bench.send_row(row, [True] * 9)                                    # all masked
        bench.send_row([fmt.max_int] + row, [True] + [False] * 9)          # the huge one masked
    await bench.drain()
    cov = Coverage("tb_softmax.corner_rows")
    cov.point("row_length", ["one", "n_max", "cut_at_n_max"])
    if cfg.output.int_bits == 0:   # a length-1 row's 1.0 saturates only in UQ0.x
        cov.point("saturation", ["max"])
    if cfg.mask:
        cov.point("mask", ["all_masked", "all_but_one"])
    for length, masked in bench.rows:
        cov.sample("row_length", {1: "one", n: "n_max"}.get(length, "other"))
        if cfg.mask and masked == length:
            cov.sample("mask", "all_masked")
        elif cfg.mask and masked == length - 1 and length > 1:
            cov.sample("mask", "all_but_one")
    if bench.cut_rows:
        cov.sample("row_length", "cut_at_n_max")
    if cfg.output.int_bits == 0 and bench.saturated:
        cov.sample("saturation", "max")
    cov.check()


@cocotb.test()
async def full_rate_throughput(dut, gap="none", stall="none"):
    """Consecutive rows at full rate: one beat per cycle, no bubble between long rows."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg, rng = bench.config, bench.rng
    figures = timing(cfg)
    latency, passes = figures["first_output_latency"], figures["passes"]
    n = rng.randint(1, cfg.n_max)  # one row alone: its first output after passes n + latency cycles
    bench.send_row(bench.random_row(n)[0])
    start = bench.sink.cycle
    await bench.sink.wait_count(1, timeout_cycles=10 * (n + latency))
    first = bench.sink.cycle - start
    await bench.drain()
    dut._log.info("row of %d: first output after %d cycles (documented: %dn + %d)", n, first, passes, latency)
    assert first <= passes * n + latency, f"row of {n}: first output after {first} cycles > {passes}n + {latency}"
    overhead = figures["row_overhead"]
    sustained = overhead <= cfg.n_max  # else even rows of n_max wait for the reciprocal
    lengths = [rng.randint(min(overhead, cfg.n_max), cfg.n_max) for _ in range(12)]
    for n in lengths:
        bench.send_row(bench.random_row(n)[0])
    start, refused = bench.sink.cycle, bench.input.stalls
    await bench.drain()
    cycles = bench.sink.cycle - start
    if sustained:
        assert bench.input.stalls == refused, (
            f"the input was refused for {bench.input.stalls - refused} cycles at full rate "
            f"(rows {lengths}, each >= row_overhead {overhead})")
    bound = sum(max(n, overhead) for n in lengths) + latency + passes * max(lengths)
    dut._log.info("%d beats in %d cycles (bound %d)", sum(lengths), cycles, bound)
    assert cycles <= bound, f"{sum(lengths)} beats in rows {lengths} took {cycles} cycles > {bound}"


@cocotb.test()
async def reset_mid_row(dut, gap="random10", stall="random40"):
    """Reset while a row is half in and earlier rows are in flight; then exact again."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    cfg, rng = bench.config, bench.rng
    for _ in range(3):
        bench.send_row(*bench.random_row(cfg.n_max))
    bench.send_row([0] * (cfg.n_max // 2), last_at_end=False)  # a half row, never finished
    await ClockCycles(dut.clk, rng.randint(2 * cfg.n_max, 3 * cfg.n_max))
    for _ in range(2000):
        if int(dut.o__valid.value):
            break
        await RisingEdge(dut.clk)
    assert int(dut.o__valid.value), "coverage: reset did not hit a busy unit"
    bench.source.clear()
    await reset_dut(dut, dut.clk)
    bench.sink.clear()
    bench.scoreboard.clear()
    bench.expected = 0
    assert not int(dut.o__valid.value), "o.valid must be low right after reset"
    for _ in range(8):
        bench.send_row(*bench.random_row())
    await bench.drain()


@cocotb.test()
async def long_stalls(dut, gap="random5", stall="bursty_long"):
    """The consumer stops for long stretches; nothing is lost, nothing repeated."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    for _ in range(20):
        bench.send_row(*bench.random_row())
    await bench.drain()
    assert bench.output.stalls > 50, "coverage: no long stall happened"
