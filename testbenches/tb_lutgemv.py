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
* ``commands_after_vectors``: every command held back until the vector after its own is in
  (activations sent ahead): the unit takes each command with both vector buffers full.
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

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from lowbit.golden_models import lutgemv as golden
from lowbit.rtl_gen.lutgemv_ram import timing as ram_timing
from lowbit.testbenches.coverage import lutgemv_points
from lowbit.testbenches.drivers import reset_dut, seed_from_env
from lowbit.testbenches.lutgemv_bench import Bench, extreme_bound


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
        assert extreme_bound(cfg, bits) in bench.results and -extreme_bound(cfg, bits) in bench.results, \
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


@cocotb.test()
async def commands_after_vectors(dut, gap="random20", stall="random20"):
    """Each command is held back until the vector after its own is in (a host that sends
    activations ahead): the unit then takes it with both vector buffers full, so the
    closing of one buffer must leave the other buffer's activation sum, length and table
    as they were. (``tables: ram`` stores groups in a ring of table slots, not whole
    vectors: there a command is also released once ``x`` is held.)"""
    bench = Bench(dut, seed_from_env(), gap, stall)
    await bench.start()
    rows = cycles = 0
    for index in range(6):
        bits = bench.precisions[index % len(bench.precisions)]
        codes, zero, x = bench.random_vector(bits)
        rows += len(bench.queue(codes, zero, x, bits, hold_command=True))
        cycles += bench.work(*codes.shape, bits)
    budget = 10 * cycles + 100 * len(bench.held_commands) + 2000  # the work queued
    x, held_x, waited = bench.sources["x"], 0, 0
    for index, command in enumerate(bench.held_commands):
        through = bench.x_through[min(index + 1, len(bench.x_through) - 1)]
        while x.sent < through and not (bench.ram and held_x >= 4):
            await RisingEdge(dut.clk)
            held_x = held_x + 1 if int(dut.x__valid.value) and not int(dut.x__ready.value) else 0
            waited += 1
            assert waited <= budget, f"x took {x.sent} of {through} beats in {budget} cycles " \
                                     f"with command {index} held"
        bench.sources["cmd"].send_nowait(command)
    await bench.drain(rows, timeout=budget)
