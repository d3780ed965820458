"""cocotb bench of the GEMV units (``lutgemv`` and its multiplier baseline ``gemv_mult``).

Runs inside the simulator. The design point arrives as a YAML path in ``LOWBIT_CONFIG``, the
seed in ``LOWBIT_SEED``. Both families share ports and golden function; only the weight
packing differs (``golden_models.lutgemv.weight_beats``).

Tests
-----
* ``every_precision_random_and_extreme``: for every run-time precision 1..bits_max, random
  matrices and zero points plus extreme ones (all codes 0 or max, activations at their
  limits, largest row scale: the largest positive and negative results), vector lengths
  from one group to ``k_max``, 1..3 row tiles, random row scales (0 and the maximum forced
  in) when the point has ``scale_bits``, random gaps on ``cmd``/``x``/``w``/``scale`` and
  random backpressure on ``y``; vectors queued back to back so tables are built while the previous pass runs.
* ``full_rate_cycle_count``: no pressure, long passes at every precision; the measured
  cycles from the first weight beat to the last result must be within 5 % (plus the first
  table build and the latency) of the ideal ``sum((M/rows) * planes * K/g)``. The figures go to
  ``LOWBIT_CYCLES_OUT`` (JSON) when set.
* ``reset_mid_vector``: a reset in the middle of a weight pass; the next vectors are exact.
* ``back_to_back_short_passes``: passes of one group (K = g, one to three tiles) queued back
  to back with long ``y`` stalls, each with a different precision and zero point than the
  one before: a pass must not start while the previous pass's last tile waits behind a held
  ``y`` (its offset and precision would change under it).
* ``out_of_range_commands``: ``bits`` 0 and above ``bits_max``, zero points above
  ``2**bits - 1`` and vectors longer than ``k_max``, mixed with valid passes: the unit must
  clamp and truncate exactly as ``golden_models.lutgemv.command`` / ``used_length`` say.

Every test also runs :class:`XReadyCheck`: on every cycle out of reset, ``x.ready`` may be
low only while both vector buffers are in use (a buffer is in use from the first beat of its
vector to the final weight beat of its pass), as the shell's docstring promises.

With ``exp_bits`` every group gets a random shift (0 and the maximum forced in; the
maximum in the extreme vectors).
With ``qgroup`` every vector gets random group scales and zero points on ``q`` (scale 0
and the maximum, zero 0, ``2**bits - 1`` and one above the range forced in; the largest
scale in the extreme vectors), and every expectation is also checked against the
vectorised whole-layer model ``golden.gemv``.
With ``batch`` B > 1 every vector is B vectors travelling together (B x K activations, B
results per row, each checked against the golden model).

RAM tables (``tables: ram``, ``rtl_gen.lutgemv_ram``): the weight pass is in its group-outer
order with ``last`` on every row sweep (``golden.weight_lasts``); passes hold at most
``m_max`` rows; ``every_precision_random_and_extreme`` adds a pass of one row per lane over
``k_max`` (back-to-back beats on one accumulator word at 1-bit weights);
``full_rate_cycle_count`` runs passes of ``m_max`` rows and allows the unit's stated restart
(``lutgemv_ram.timing``: command clamp, flush, offset, drain); ``x`` feeds a ring of table
slots, not the shell's two vector buffers, so :class:`XReadyCheck` is not run.

Coverage asserted: every precision, ``K = g`` and ``K = k_max``, both extreme results, the
``y`` stream held while valid, and the ``w`` stream held while valid (the stream monitors).

Pressure: each test's ``gap`` (every input stream) and ``stall`` (``y``) keyword parameters
name a setting of ``testbenches.pressure.PRESSURES``; their defaults are the suite's pressure.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import lutgemv as golden
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.lutgemv_ram import timing as ram_timing
from lowbit.testbenches.coverage import lutgemv_points
from lowbit.testbenches.drivers import StreamSink, StreamSource, reset_dut, seed_from_env
from lowbit.testbenches.lutgemv_checks import XReadyCheck
from lowbit.testbenches.monitor import StreamMonitor
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.scoreboard import Scoreboard


class Bench:
    """DUT, four stream drivers, the ``y`` and ``w`` monitors, golden model and scoreboard for
    one test; ``gap`` and ``stall`` name the inputs' and the output's pressure
    (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.ternary = getattr(cfg, "ternary", False)
        #: tables: ram holds at most m_max rows per pass (rows per lane: m_max / rows)
        self.ram = golden.lutgemv_ram.in_ram(cfg)
        self.tiles_max = cfg.m_max // cfg.rows if self.ram else 1 << 30
        self.batch = golden.batch(cfg)
        self.exp_bits = golden.exp_bits(cfg)
        #: y's result fields: one, or one per batch vector (vector 0 in the low bits)
        self.y_fields = ["data"] if self.batch == 1 else [f"d{v}" for v in range(self.batch)]
        #: run-time precisions to test (ternary: codes 0..2 with zero point 1, "bits" 2)
        self.precisions = [2] if self.ternary else list(range(1, cfg.bits_max + 1))
        self.span = golden.span(cfg)  # activations per x beat (lookups * g)
        beat = (cfg.rows * 5 * golden.lookups(cfg) if self.ternary else
                cfg.rows * self.span * (1 if cfg.family == "lutgemv" else cfg.wbits))
        self.layouts = {
            "cmd": PayloadLayout([("bits", cfg.bits_max.bit_length(), False),
                                  ("zero_point", cfg.bits_max, False), ("last", 1, False)]),
            "x": PayloadLayout([("data", self.batch * self.span * cfg.act_bits, False)] +
                               ([("shift", self.batch * self.exp_bits, False)] if self.exp_bits else []) +
                               [("last", 1, False)]),
            "w": PayloadLayout([("data", beat, False), ("last", 1, False)]),
            "y": PayloadLayout([(name, golden.out_width(cfg), True) for name in self.y_fields] +
                               [("last", 1, False)]),
            "scale": PayloadLayout([("data", max(1, golden.scale_bits(cfg)), False), ("last", 1, False)]),
            "q": PayloadLayout([("scale", max(1, golden.qscale_bits(cfg)), False),
                                ("zero", cfg.bits_max, False), ("last", 1, False)]),
        }
        self.scale_bits = golden.scale_bits(cfg)
        self.qgroup = golden.qgroup(cfg)
        inputs = ("cmd", "x", "w") + (("scale",) if self.scale_bits else ()) + (("q",) if self.qgroup else ())
        self.sources = {name: StreamSource(dut, name, dut.clk,
                                           pause=pressure(gap).pauses(self.rng, seed, 2 + index))
                        for index, name in enumerate(inputs)}
        self.sink = StreamSink(dut, "y", dut.clk, pause=pressure(stall).pauses(self.rng, seed))
        self.scoreboard = Scoreboard("y", fmt=self._describe)
        #: the streams whose stalls coverage asks for
        self.monitors = {name: StreamMonitor(dut, name, dut.clk, layout=self.layouts[name])
                         for name in ("y", "w")}
        # tables: ram takes x into a ring of table slots, not two vector buffers (its x waits
        # for a free slot: rtl_gen.lutgemv_ram_build), so the shell's promise does not apply
        self.x_ready = None if self.ram else XReadyCheck(dut, dut.clk, self.layouts)
        self.results: list[int] = []
        self.shapes: list[tuple[int, int, int]] = []  # (M, K, bits) of the passes queued
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    def _describe(self, raw: int) -> str:
        fields = self.layouts["y"].unpack(raw)
        return f"y={[fields[n] for n in self.y_fields]} last={fields['last']}"

    def work(self, m: int, k: int, bits: int) -> int:
        """Cycles a pass takes without stalls, for timeouts: its weight beats (tables: ram:
        the unit's stated timing, table builds and the drain included)."""
        if self.ram:
            return ram_timing(self.config, m, min(k, self.config.k_max), bits)
        return golden.ideal_cycles(self.config, m, k, bits)

    def held(self) -> dict[str, int]:
        """Stalled cycles (valid high, ready low) per monitored stream."""
        return {name: monitor.stalls for name, monitor in self.monitors.items()}

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def group_params(self, m: int, k: int, bits: int, qscales=None, qzeros=None):
        """Group scales and zero points (M, ceil(K/qgroup)) for a vector of ``k`` used columns:
        random unless given, with scale 0 and the maximum, zero point 0 and ``2**bits - 1``
        forced in, and some zero points above ``2**bits - 1`` (clamped by the unit)."""
        n = -(-k // self.qgroup)
        smax, bits = (1 << golden.qscale_bits(self.config)) - 1, golden.command(self.config, bits, 0)[0]
        rng = self.np_rng
        if qscales is None:
            qscales = rng.integers(0, smax + 1, (m, n))
            qscales.flat[rng.integers(0, m * n, 2)] = [0, smax]
        if qzeros is None:
            qzeros = rng.integers(0, 1 << bits, (m, n))
            qzeros.flat[rng.integers(0, m * n, 3)] = [0, (1 << bits) - 1, (1 << self.config.bits_max) - 1]
        return np.asarray(qscales)[:, :n], np.asarray(qzeros)[:, :n]

    def queue(self, codes, zero: int, x, bits: int, scales=None, shifts=None,
              qscales=None, qzeros=None) -> np.ndarray:
        """Send one vector (``x``: B x K, B = batch) with its command, weight pass and row
        scales if the point has them (random, with 0 and the maximum forced in, unless given);
        expect the golden rows. ``bits``, ``zero`` and K go out as given; the weight pass is
        that of the operands the unit uses (``golden.operands``: clamped, truncated)."""
        cfg, lay = self.config, self.layouts
        if self.scale_bits and scales is None:
            scales = self.np_rng.integers(0, 1 << self.scale_bits, len(codes))
            scales[self.np_rng.integers(0, len(codes), 2)] = [0, (1 << self.scale_bits) - 1]
        groups = x.shape[1] // self.span
        if self.exp_bits and shifts is None:  # random group shifts, 0 and the maximum forced in
            shifts = self.np_rng.integers(0, golden.max_shift(cfg) + 1, (self.batch, groups))
            shifts[:, self.np_rng.integers(0, groups, 2)] = [0, golden.max_shift(cfg)]
        used, zero_u, x_u, bits_u, shifts_u = golden.operands(cfg, codes, zero, x, bits, shifts)
        if self.qgroup:
            qscales, qzeros = self.group_params(len(codes), used.shape[1], bits, qscales, qzeros)
            for index, (sc, zp) in enumerate(golden.group_beats(cfg, qscales, qzeros, cfg.rows)):
                self.sources["q"].send_nowait(lay["q"].pack(scale=sc, zero=zp, last=0))
        expected = golden.batch_model(cfg, codes, zero, x, bits, scales, shifts, qscales, qzeros)  # (M, B)
        xs = x_u if shifts is None else [golden.shifted(v, sh, self.span) for v, sh in zip(x_u, shifts_u)]
        if self.qgroup:  # the whole-layer model (vectorised, no tables)
            reference = golden.gemv(cfg, codes, x, bits, zero, qscales=qscales, qzeros=qzeros)
        else:
            reference = np.stack([golden.reference(used, zero_u, v) for v in xs], axis=1)
        if self.scale_bits:
            reference = reference * np.asarray(scales)[:, None]
            for index, s in enumerate(np.asarray(scales).tolist()):
                self.sources["scale"].send_nowait(lay["scale"].pack(data=s, last=int(index == len(scales) - 1)))
        assert (expected == reference).all()  # the model is the function
        self.sources["cmd"].send_nowait(lay["cmd"].pack(bits=bits, zero_point=zero, last=1))
        xs = golden.batch_activation_beats(x, self.span, cfg.act_bits)
        for index, raw in enumerate(xs):
            extra = {}
            if self.exp_bits:
                extra["shift"] = sum(int(sh[index]) << (v * self.exp_bits) for v, sh in enumerate(shifts))
            self.sources["x"].send_nowait(lay["x"].pack(data=raw, **extra, last=int(index == len(xs) - 1)))
        ws = golden.weight_beats(cfg, used, bits_u)
        for raw, last in zip(ws, golden.weight_lasts(cfg, *used.shape, bits_u)):
            self.sources["w"].send_nowait(lay["w"].pack(data=raw, last=last))
        for row, ys in enumerate(expected.tolist()):
            self.scoreboard.expect(lay["y"].pack(**dict(zip(self.y_fields, ys)), last=int(row == len(expected) - 1)),
                                   stimulus=f"bits={bits} z={zero} K={x.shape[1]} row={row}")
        return expected

    def random_vector(self, bits: int, k: int | None = None, tiles: int | None = None):
        cfg, rng = self.config, self.np_rng
        k = k or self.span * int(rng.integers(1, cfg.k_max // self.span + 1))
        m = cfg.rows * min(tiles or int(rng.integers(1, 4)), self.tiles_max)
        x = rng.integers(-(1 << (cfg.act_bits - 1)), 1 << (cfg.act_bits - 1), (self.batch, k))
        if self.ternary:
            return rng.integers(0, 3, (m, k)), 1, x
        codes = rng.integers(0, 1 << bits, (m, k))
        return codes, int(rng.integers(0, 1 << bits)), x

    def extreme_vectors(self, bits: int):
        """Largest positive and negative results: codes at 0 / max, z at max / 0, x at min."""
        cfg = self.config
        k, m = cfg.k_max, cfg.rows
        low = np.full((self.batch, k), -(1 << (cfg.act_bits - 1)))
        top = (1 << bits) - 1
        scales = np.full(m, (1 << self.scale_bits) - 1) if self.scale_bits else None
        shifts = np.full((self.batch, k // self.span), golden.max_shift(cfg)) if self.exp_bits else None
        if self.ternary:
            return [(np.full((m, k), c), 1, low, scales, shifts) for c in (0, 2, 1)]

        def group(zero):  # the largest group scale everywhere, the pass's zero point in every group
            if not self.qgroup:
                return None, None
            n = -(-k // self.qgroup)
            return np.full((m, n), (1 << golden.qscale_bits(cfg)) - 1), np.full((m, n), zero)
        return [(np.zeros((m, k), int), top, low, scales, shifts, *group(top)),   # (0 - top) * low * K > 0
                (np.full((m, k), top), 0, low, scales, shifts, *group(0)),        # top * low * K < 0
                (np.full((m, k), top), top, low + 1, scales, shifts, *group(top))]  # zero result

    async def drain(self, count: int, timeout: int) -> None:
        await self.sink.wait_count(count, timeout_cycles=timeout)
        assert self.x_ready is None or not self.x_ready.violations, \
            f"x stalled with a buffer free: {self.x_ready.violations}"
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
            fields = self.layouts["y"].unpack(raw)
            self.results += [fields[name] for name in self.y_fields]
        self.sink.clear()
        self.scoreboard.check_done()


def _bound(cfg, bits: int) -> int:
    """The extreme result at ``bits``-bit weights (times the largest scale if scaled, shifted
    by the largest group shift if the point has ``exp_bits``)."""
    scale = ((1 << golden.scale_bits(cfg)) - 1 if golden.scale_bits(cfg) else 1) << golden.max_shift(cfg)
    if golden.qgroup(cfg):
        scale = (1 << golden.qscale_bits(cfg)) - 1
    if getattr(cfg, "ternary", False):
        return (1 << (cfg.act_bits - 1)) * cfg.k_max * scale
    return ((1 << bits) - 1) * (1 << (cfg.act_bits - 1)) * cfg.k_max * scale


@cocotb.test()
async def every_precision_random_and_extreme(dut, gap="random30", stall="random30"):
    """Random and extreme matrices at every precision, with gaps and backpressure."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    cfg = bench.config
    cov = lutgemv_points(cfg, "tb_lutgemv.every_precision_random_and_extreme",
                         ["precision", "zero_point", "vector_length"])
    await bench.start()
    lengths, rows, cycles = set(), 0, 0
    for bits in bench.precisions:
        vectors = [bench.random_vector(bits, k=bench.span, tiles=1),
                   bench.random_vector(bits, k=cfg.k_max)] + [bench.random_vector(bits) for _ in range(3)]
        vectors += bench.extreme_vectors(bits)
        if bench.ram:  # one row per lane over all of k_max: back-to-back beats on one word
            vectors.append(bench.random_vector(bits, k=cfg.k_max, tiles=1))
        bench.rng.shuffle(vectors)
        for codes, zero, x, *extra in vectors:
            expected = bench.queue(codes, zero, x, bits, *extra)
            lengths.add(x.shape[1])
            cov.sample("precision", bits)
            if cov.declares("zero_point"):
                cov.sample("zero_point", {0: "zero", (1 << bits) - 1: "max"}.get(zero, "other"))
            cov.sample("vector_length", {bench.span: "one_group", cfg.k_max: "k_max"}.get(x.shape[1], "other"))
            rows += len(expected)
            cycles += bench.work(*codes.shape, bits)
        await bench.drain(rows, timeout=10 * cycles + 2000)
        assert _bound(cfg, bits) in bench.results and -_bound(cfg, bits) in bench.results, \
            f"coverage: extreme results of {bits}-bit weights not seen"
        rows = cycles = 0
    assert {bench.span, cfg.k_max} <= lengths, "coverage: K = g (one beat) and K = k_max"
    held = bench.held()
    assert held["y"] > 0 and held["w"] > 0, f"coverage: stalls {held}"
    cov.check()
    dut._log.info("%d results checked; stalled cycles %s", len(bench.results), held)


@cocotb.test()
async def full_rate_cycle_count(dut, gap="none", stall="none"):
    """Long passes without pressure: within 5 % of the ideal cycle count."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    cfg = bench.config
    await bench.start()
    groups = cfg.k_max // bench.span
    planes = bench.precisions if cfg.family == "lutgemv" else [cfg.bits_max]
    # each pass at least 40 restarts long, so the fixed per-pass restart stays under 2.5 %
    tiles = max(2, -(-40 * 12 // groups))
    if bench.ram:  # the longest passes (m_max rows): the table build hides behind them
        tiles = bench.tiles_max
    rows = ideal = 0
    for bits in planes:
        for _ in range(2):
            codes, zero, x = bench.random_vector(bits, k=cfg.k_max, tiles=tiles)
            rows += len(bench.queue(codes, zero, x, bits))
            ideal += golden.ideal_cycles(cfg, *codes.shape, bits)
            bench.shapes.append((*codes.shape, bits))
    await RisingEdge(dut.w__valid)
    start = bench.sink.cycle
    await bench.drain(rows, timeout=4 * sum(bench.work(*shape) for shape in bench.shapes) + 1000)
    measured = bench.sink.cycle - start
    allowance = groups + cfg.group + 16  # the first table build, pipeline fill and latency
    if bench.ram:  # the stated restart of each pass (drain included: lutgemv_ram.timing)
        ideal_ram = sum(ram_timing(cfg, *shape) for shape in bench.shapes)
        allowance += ideal_ram - ideal
    dut._log.info("cycles: measured %d, ideal %d (%.2f %%)", measured, ideal, 100 * measured / ideal)
    out = os.environ.get("LOWBIT_CYCLES_OUT")
    if out:
        with open(out, "w") as handle:
            json.dump({"measured": measured, "ideal": ideal, "allowance": allowance}, handle)
    assert measured <= 1.05 * ideal + allowance, f"{measured} cycles for an ideal {ideal}"


@cocotb.test()
async def reset_mid_vector(dut, gap="random20", stall="random20"):
    """Reset in the middle of a weight pass; the vectors after it are exact."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    cfg = bench.config
    await bench.start()
    bits = cfg.bits_max
    for _ in range(2):
        bench.queue(*bench.random_vector(bits, k=cfg.k_max, tiles=2), bits)
    total = len(golden.weight_beats(cfg, np.zeros((cfg.rows * 2, cfg.k_max), int), bits))
    target = bench.rng.randint(total // 4, total + total // 2)
    for _ in range(50 * total):
        if bench.sources["w"].sent >= target:
            break
        await RisingEdge(dut.clk)
    assert 0 < bench.sources["w"].sent < 2 * total, "coverage: reset did not hit a running pass"
    cov = lutgemv_points(cfg, "tb_lutgemv.reset_mid_vector", ["reset"])
    cov.sample("reset", "mid_vector")
    for source in bench.sources.values():
        source.clear()
    await reset_dut(dut, dut.clk)
    bench.sink.clear()
    bench.scoreboard.clear()
    assert not int(dut.y__valid.value), "y.valid must be low right after reset"
    rows = cycles = 0
    for bits in sorted({bench.precisions[0], bits}):
        codes, zero, x = bench.random_vector(bits)
        rows += len(bench.queue(codes, zero, x, bits))
        cycles += bench.work(*codes.shape, bits)
    await ClockCycles(dut.clk, 1)
    # the timeout scales with the work: random K reaches k_max = 4096 on the LLM points
    await bench.drain(rows, timeout=10 * cycles + 2000)
    cov.check()


@cocotb.test()
async def back_to_back_short_passes(dut, gap="none", stall="stop_go"):
    """Passes of K = g queued back to back behind long y stalls; each pass changes the
    precision and the zero point, so a pass started under its predecessor's stalled last
    tile gives that tile the wrong offset."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    cfg = bench.config
    await bench.start()
    cov = lutgemv_points(cfg, "tb_lutgemv.back_to_back_short_passes", ["command_change"])
    rows = 0
    previous = sent = None
    choices = [(b, z) for b in bench.precisions for z in range(1 << b)]
    for index in range(16):
        bits, zero = bench.rng.choice([c for c in choices if c != previous] or choices)
        previous = (bits, zero)
        codes, _, x = bench.random_vector(bits, k=bench.span, tiles=1 + index % 3)
        command = (bits, 1 if bench.ternary else zero)
        rows += len(bench.queue(codes, command[1], x, bits))
        if cov.declares("command_change") and sent is not None:
            cov.sample("command_change", "changed" if command != sent else "same")
        sent = command
    await bench.drain(rows, timeout=400 * rows + 2000)
    held = bench.held()
    assert held["y"] > 0, f"coverage: y never held {held}"
    cov.check()


@cocotb.test()
async def out_of_range_commands(dut, gap="random20", stall="random20"):
    """bits 0 and above bits_max, zero points above 2**bits - 1, vectors longer than k_max:
    clamped and truncated as the golden model says, mixed with in-range passes."""
    bench = Bench(dut, seed_from_env(), gap, stall)
    cfg = bench.config
    await bench.start()
    field = (1 << cfg.bits_max.bit_length()) - 1  # the largest bits a cmd beat can carry
    zmax = (1 << cfg.bits_max) - 1                # the largest zero point it can carry
    cases = [(0, 0), (0, zmax), (field, zmax)] + ([(cfg.bits_max + 1, zmax)] if cfg.bits_max + 1 <= field else [])
    cases += [(b, z) for b in range(1, cfg.bits_max) for z in ((1 << b), zmax)]  # z >= 2**bits
    cov = lutgemv_points(cfg, "tb_lutgemv.out_of_range_commands", ["clamped"])
    rows, seen, cycles, passes = 0, set(), 0, 0
    for bits, zero in cases + [(cfg.bits_max, zmax)] * 2:
        used_bits, used_zero = golden.command(cfg, bits, zero)
        long = bits == cfg.bits_max and zero == zmax  # in range, but too long a vector
        if bits == 0:
            cov.sample("clamped", "bits_0")
        elif bits > cfg.bits_max:
            cov.sample("clamped", "bits_over")
        elif zero > (1 << bits) - 1:
            cov.sample("clamped", "zero_over")
        if long:
            cov.sample("clamped", "k_over")
        k = cfg.k_max + bench.span * bench.rng.randint(1, 3) if long else None
        codes, _, x = bench.random_vector(used_bits, k=k, tiles=1 + len(seen) % 2)
        rows += len(bench.queue(codes, zero, x, bits))
        cycles += bench.work(len(codes), golden.used_length(cfg, x.shape[1]), used_bits)
        seen.add((bits, zero, used_bits, used_zero, x.shape[1] > cfg.k_max))
        # an in-range pass after each, so a wrong clamp cannot hide in the next pass's offset
        codes, zero_ok, x = bench.random_vector(cfg.bits_max, tiles=1)
        rows += len(bench.queue(codes, zero_ok, x, cfg.bits_max))
        cycles += bench.work(*codes.shape, cfg.bits_max)
        passes += 2
    # the timeout scales with the work queued (each pass's weight beats, at least its
    # vector's x beats), plus each pass's restart, drain and the truncated vectors' dropped
    # groups: a hung mutant fails in seconds, not after 40 * rows * k_max cycles
    await bench.drain(rows, timeout=10 * cycles + 100 * passes + 2000)
    assert any(s[4] for s in seen), "coverage: a vector longer than k_max"
    cov.check()
