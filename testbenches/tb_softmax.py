"""cocotb bench of the streaming softmax unit: rows of scores against the golden model.

Runs inside the simulator. The design point arrives as a YAML path in ``LOWBIT_CONFIG``
(the resolved ``build/<name>/config.yaml``), the seed in ``LOWBIT_SEED``.

Tests
-----
* ``random_rows_with_pressure``: rows of random length 1..n_max (narrow, wide-spread and
  full-range scores; random masks where the design has them) with random gaps and random
  backpressure, in six batches, each drained (the unit's occupancy counts return to 0).
* ``corner_rows``: all equal, one huge, all at the minimum, all at the maximum, length 1,
  length n_max, a row longer than n_max (cut at n_max), all masked but one, all masked.
* ``full_rate_throughput``: consecutive rows with no gaps and no backpressure must take at
  most ``sum(max(n, row_overhead)) + first_output_latency + passes max(n)`` cycles, and the
  input is never refused over rows of ``n >= row_overhead`` (one beat per cycle, no bubble); a
  lone row's first output comes ``passes n + first_output_latency`` cycles after its first
  input beat (``passes``: 2 with the row buffer, 1 with the online max).
* ``reset_mid_row``: a reset while a row is half in and others are in flight; everything
  after the reset is exact.
* ``long_stalls``: the consumer stops for long random stretches and holds every row's last
  result back once (rows of 1 and n_max among them); then it stops altogether while rows of
  one beat arrive, until the input refuses a ``last`` beat (it must: more beats are sent than
  the unit can hold); then twice while rows of n_max arrive, until the buffers are full.

Functional coverage (``testbenches.softmax_coverage``: declared bins, only those the design
can reach, checked at the end of each test and exported beside ``results.xml``; a missed bin
fails naming it): row lengths 1 and n_max and a row cut at n_max, the strict maximum first
and last (x length 2 and n_max) and at both parities, probabilities of 0 and of the largest
code (UQ0.x) or exactly 1.0, ``e`` underflowing and a positive ``e`` rounding to 0, masked
beats, all-masked, all-but-one and masked-maximum rows (``mask: true``), the online running
max rising and flushing the partial sums (``max_mode: online``), the output stalled, a row's
last result held on ``o`` (x rows of 1 and n_max) and a ``last`` beat refused on ``i``, rows
back to back on ``i`` and ``o``, a reset with a row partly sent and results in flight. The
value bins are sampled from the golden model of the rows sent (``row_bins``); the corner
rows include directed rows reaching each of them (``witness_rows``).

Pressure: each test's ``gap`` (on ``i``) and ``stall`` (on ``o``) keyword parameters name a
setting of ``testbenches.pressure.PRESSURES``; their defaults are the suite's pressure.
"""
from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.softmax import input_layout, timing
from lowbit.testbenches.drivers import reset_dut, seed_from_env
from lowbit.testbenches.gate import GatedPressure
from lowbit.testbenches.monitor import BeatEdges, StreamMonitor
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.softmax_coverage import (HoldLast, row_bins, softmax_points,
                                                 witness_rows)
from lowbit.testbenches.stream_pair import attach_stream_pair


class Bench:
    """DUT, drivers, stream monitors, golden model and scoreboard for one test; ``gap`` and
    ``stall`` name the input's and the output's pressure (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str, test: str, points=()):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.constants = golden.constants_of(cfg)
        self.rng = random.Random(seed)
        self.in_layout = PayloadLayout.from_struct(input_layout(cfg))
        self.out_layout = PayloadLayout([("data", cfg.output.width, False), ("last", 1, False)])
        stall_pressure = GatedPressure(**vars(pressure(stall)))
        self.gate = stall_pressure.gate
        attach_stream_pair(self, seed, gap, stall_pressure, data="p")
        self.expected = 0
        # its stalls: cycles the input was refused (last_stalls: with last set)
        self.input = StreamMonitor(dut, "i", dut.clk, layout=self.in_layout)
        self.cut_rows = 0
        self.rows = []        # (x, mask) of every row the unit sees (for coverage)
        self.row_ends = {}    # index of each row's last result in this batch -> row length
        self.cov = softmax_points(cfg, f"tb_softmax.{test}", points)

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
            self.rows.append((x[start:stop], mask[start:stop]))
            self.row_ends[self.expected + stop - start - 1] = stop - start
            for j, p in enumerate(out.tolist()):
                at = start + j
                self.scoreboard.expect(self.out_layout.pack(data=p, last=int(at == stop - 1)),
                                       stimulus=f"row[{start}:{stop}] beat {j}: x={x[at]} mask={mask[at]}")
            self.expected += stop - start
        for xi, mi, li in zip(x, mask, last):
            fields = {"data": xi, "last": li}
            if cfg.mask:
                fields["mask"] = int(mi)
            self.source.send_nowait(self.in_layout.pack(**fields))

    async def drain(self) -> None:
        """Wait for every expected output, score them in order, and start afresh."""
        count = self.expected
        await self.sink.wait_count(count, timeout_cycles=40 * count + 2000)
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
        self.sink.clear()
        self.expected = 0
        self.row_ends = {}
        self.scoreboard.check_done()

    def sample_rows(self) -> None:
        """Sample the value bins the test declared from every row sent (golden model)."""
        cov = self.cov
        for x, mask in self.rows:
            for point, value in row_bins(self.config, self.constants, x, mask):
                if cov.declares(point):
                    cov.sample(point, value)
        if self.cut_rows and cov.declares("row_length"):
            cov.sample("row_length", "cut_at_n_max")

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
    bench = Bench(dut, seed_from_env(), gap, stall, "random_rows_with_pressure",
                  ("stall", "masked_input"))
    await bench.start()
    if bench.config.mask:   # at least one masked beat, whatever the seed
        x, _ = bench.random_row()
        bench.send_row(x, [True] + [False] * (len(x) - 1))
    for batch in range(6):   # each batch drains the unit (its occupancy counts back to 0)
        for _ in range(10):
            bench.send_row(*bench.random_row())
        await bench.drain()
    if bench.output.stalls:
        bench.cov.sample("stall", "stalled")
    if bench.cov.declares("masked_input") and any(any(mask) for _x, mask in bench.rows):
        bench.cov.sample("masked_input", "masked_beat")
    bench.cov.check()


@cocotb.test()
async def corner_rows(dut, gap="random10", stall="random10"):
    """Extreme rows, each under light pressure, and the directed rows of every value bin."""
    bench = Bench(dut, seed_from_env(), gap, stall, "corner_rows",
                  ("row_length", "max_position", "max_parity", "output", "exp", "mask",
                   "running_max"))
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
    for x, mask in witness_rows(cfg, bench.constants, rng):
        bench.send_row(x, mask)
    # short rows near the top: their sums are small (D = S >> (ef - hf) near its minimum),
    # where every bit of a row sum moves R = 2**k / D, and through every slot of the sum and
    # reciprocal queues (a few times each)
    for k in range(8 * timing(cfg)["rows_in_flight"]):
        bench.send_row([fmt.max_int] + [max(fmt.min_int, fmt.max_int - 1 - k)] * (k % 3))
    await bench.drain()
    bench.sample_rows()
    bench.cov.check()


@cocotb.test()
async def full_rate_throughput(dut, gap="none", stall="none"):
    """Consecutive rows at full rate: one beat per cycle, no bubble between long rows."""
    bench = Bench(dut, seed_from_env(), gap, stall, "full_rate_throughput", ("back_to_back",))
    edges = {"input": BeatEdges(dut, "i", bench.in_layout.offset("last")),
             "output": BeatEdges(dut, "o", bench.out_layout.offset("last"))}
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
    for name, trace in edges.items():
        if trace.back_to_back():
            bench.cov.sample("back_to_back", name)
    bench.cov.check()


@cocotb.test()
async def reset_mid_row(dut, gap="random10", stall="random40"):
    """Reset while a row is half in and earlier rows are in flight; then exact again."""
    bench = Bench(dut, seed_from_env(), gap, stall, "reset_mid_row", ("reset",))
    await bench.start()
    cfg, rng = bench.config, bench.rng
    for _ in range(3):
        bench.send_row(*bench.random_row(cfg.n_max))
    whole = bench.expected
    bench.send_row([0] * (cfg.n_max // 2), last_at_end=False)  # a half row, never finished
    await ClockCycles(dut.clk, rng.randint(2 * cfg.n_max, 3 * cfg.n_max))
    for _ in range(40 * whole + 2000):   # until a beat of the half row is in and a result out
        if int(dut.o__valid.value) and bench.source.sent > whole:
            break
        await RisingEdge(dut.clk)
    if bench.source.sent > whole:
        bench.cov.sample("reset", "mid_row")
    if int(dut.o__valid.value):
        bench.cov.sample("reset", "results_in_flight")
    bench.cov.check()
    bench.source.clear()
    await reset_dut(dut, dut.clk)
    bench.sink.clear()
    bench.scoreboard.clear()
    bench.expected = 0
    bench.row_ends = {}
    assert not int(dut.o__valid.value), "o.valid must be low right after reset"
    for _ in range(8):
        bench.send_row(*bench.random_row())
    await bench.drain()


@cocotb.test()
async def long_stalls(dut, gap="random5", stall="bursty_long"):
    """The consumer stops for long stretches and on every row's last result; then it stops
    until the input refuses a ``last`` beat. Nothing is lost, nothing repeated."""
    bench = Bench(dut, seed_from_env(), gap, stall, "long_stalls", ("stall", "last_stall"))
    cfg = bench.config
    hold = HoldLast(bench)
    bench.gate.condition = hold
    await bench.start()
    for _ in range(20):
        bench.send_row(*bench.random_row())
    for n in (1, cfg.n_max, 1):
        bench.send_row(*bench.random_row(n))
    rows = len(bench.row_ends)
    await bench.drain()
    bench.gate.condition = None
    assert bench.output.stalls > 50, "coverage: no long stall happened"
    bench.cov.sample("stall", "stalled")
    # every row's last result was held back at least once (HoldLast), with last set
    assert bench.output.last_stalls >= rows, (
        f"{bench.output.last_stalls} stalled edges showed last in {rows} rows held on their "
        "last result: o.last is not on every row's final result")
    for length in hold.held:
        if length in (1, cfg.n_max):
            bench.cov.sample("last_stall", ("output", "one" if length == 1 else "n_max"))
    # the consumer stops while more one-beat rows arrive than the unit holds: i must refuse one
    # (it holds at most output_queue results and rows_in_flight rows in each of its row
    # queues: more rows than that wait at the input)
    figures = timing(cfg)
    beats = figures["output_queue"] + 2 * figures["rows_in_flight"] + 16
    refused = bench.input.last_stalls
    bench.gate.condition = lambda: True
    for _ in range(beats):
        bench.send_row(*bench.random_row(1))
    for _ in range(40 * beats + 2000):
        if bench.input.last_stalls > refused:
            break
        await RisingEdge(dut.clk)
    assert bench.input.last_stalls > refused, (
        f"{beats} rows of one beat sent to a stopped consumer were all taken")
    bench.cov.sample("last_stall", ("input", "one"))
    bench.gate.condition = None
    await bench.drain()
    # then rows of n_max into the stopped consumer until the e buffer's room runs out (more
    # beats than it holds), twice: every occupancy count climbs to its limit and drains
    for _ in range(2):
        beats = figures["e_depth"] + figures["x_depth"] + (figures["rows_in_flight"] + 2) * cfg.n_max
        refused = bench.input.stalls
        bench.gate.condition = lambda: True
        for _ in range(-(-beats // cfg.n_max)):
            bench.send_row(*bench.random_row(cfg.n_max))
        for _ in range(40 * beats + 2000):
            if bench.input.stalls > refused + cfg.n_max:
                break
            await RisingEdge(dut.clk)
        assert bench.input.stalls > refused, f"{beats} beats sent to a stopped consumer were all taken"
        bench.gate.condition = None
        await bench.drain()
    bench.cov.check()
