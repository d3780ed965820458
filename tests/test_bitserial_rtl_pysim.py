"""Fast check of the bit-serial array generator in Amaranth's own simulator (no Verilator).

Several tiles of mixed run-time precision go through small arrays of every mode with random
gaps on every input stream and random backpressure on ``y``; each result beat must equal the
golden model's. The full bench (extremes, reset mid-tile, cycle counts) runs under Verilator
in tests/test_bitserial_sim.py.
"""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from lowbit.golden_models import bitserial as golden
from lowbit.rtl_gen.bitserial import BitSerialArray, parts
from lowbit.rtl_gen.families import parse_design
from lowbit.testbenches.bitserial_beats import describe_y, pack_tile


def _config(**params):
    return parse_design({"family": "bitserial", "name": "dut", "params": params}, "<test>")


def simulate(config, tiles, seed, p_gap=0.3, p_stall=0.3, max_cycles=100_000):
    """Run ``tiles`` through the array; return (received y payloads, cycles)."""
    dut = BitSerialArray(config)
    packed = [pack_tile(config, t) for t in tiles]
    queues = {name: [v for p in packed for v in getattr(p, name)] for name in ("cmd", "s", "w", "x")}
    ports = {name: getattr(dut, name) for name in queues if hasattr(dut, name)}
    rng = random.Random(seed)
    received = []

    async def bench(ctx):
        presented = {name: False for name in ports}
        cycles = 0
        while len(received) < len(tiles):
            for name, port in ports.items():
                if not presented[name] and queues[name] and rng.random() >= p_gap:
                    ctx.set(port.payload.as_value(), queues[name][0])
                    ctx.set(port.valid, 1)
                    presented[name] = True
            ctx.set(dut.y.ready, int(rng.random() >= p_stall))
            samples = await ctx.tick().sample(
                *(port.valid for port in ports.values()), *(port.ready for port in ports.values()),
                dut.y.valid, dut.y.ready, dut.y.payload.as_value())
            n = len(ports)
            samples = samples[2:]  # (clk, rst) come first
            valids, readies = samples[:n], samples[n:2 * n]
            y_valid, y_ready, y_payload = samples[2 * n:]
            for (name, port), v, r in zip(ports.items(), valids, readies):
                if v and r:
                    queues[name].pop(0)
                    presented[name] = False
                    ctx.set(port.valid, 0)
            if y_valid and y_ready:
                received.append(y_payload)
            cycles += 1
            assert cycles < max_cycles, f"stalled: {len(received)} of {len(tiles)} results"
        return cycles

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for n, (p, raw) in enumerate(zip(packed, received)):
        assert raw == p.y, (f"tile {n}: expected {p.expected.tolist()}, "
                            f"got {describe_y(config, raw)}")
    return received


MODES = [
    dict(mode="weight_serial", rows=3, cols=2, lanes=4, group_size=16, k_max=64, wbits_max=4,
         abits=5, scale_bits=3, zero_point=True),
    dict(mode="both_serial", rows=2, cols=2, lanes=4, group_size=8, k_max=32, wbits_max=3,
         abits=4, scale_bits=2, zero_point=True),
    dict(mode="parallel", rows=2, cols=1, lanes=2, group_size=8, k_max=32, wbits_max=4,
         abits=4, scale_bits=3, zero_point=True),
    dict(mode="weight_serial", rows=4, cols=1, lanes=8, group_size=8, k_max=32, wbits_max=2,
         abits=3, asigned=False, scale_bits=0),
]


def test_back_to_back_one_beat_tiles():
    """Tiles of one group of one ``lanes``-wide chunk at 1-bit precision are one beat each,
    so a tile's last group end may be followed by the next one a cycle later. With one
    carry part per accumulator and one entry per rescaler, the next tile's first total
    update landed in the cycle the copy into ``y`` cleared the totals and was lost (every
    tile after the first read 0; this case was once refused for zero points, scales and
    cols > 1). ``tile_spacing`` keeps that group end ``m + 1`` cycles away. Full rate first
    (the colliding case), then under pressure."""
    common = dict(rows=2, cols=2, lanes=4, group_size=4, k_max=16, wbits_max=3, abits=4,
                  scale_bits=2, zero_point=True)
    for mode in ("weight_serial", "both_serial", "parallel"):
        config = _config(mode=mode, **common)
        p = golden.plan(config)
        assert len(parts(p.acc_bits)) == 1 and p.entries_per_rescaler == 1  # the case
        rng = np.random.default_rng(7)
        abits = 1 if mode == "both_serial" else None
        tiles = [golden.random_tile(config, rng, 4, 1, s, abits) for s in (True, False)
                 for _ in range(3)]
        tiles += [golden.random_tile(config, rng, 4 * int(rng.integers(1, 5)), 3, True, abits)]
        simulate(config, tiles, seed=1, p_gap=0, p_stall=0)
        simulate(config, tiles, seed=2)


@pytest.mark.parametrize("params", MODES, ids=lambda p: p["mode"])
def test_generator_matches_golden_model_under_pressure(params):
    config = _config(**params)
    rng = np.random.default_rng(7)
    tiles = []
    for wbits in range(1, config.wbits_max + 1):
        for wsigned in (True, False):
            abits = int(rng.integers(1, config.abits + 1)) if config.mode == "both_serial" else None
            k = config.group_size * int(rng.integers(1, config.k_max // config.group_size + 1))
            kind = "extreme" if wbits == config.wbits_max else "random"
            tiles.append(golden.random_tile(config, rng, k, wbits, wsigned, abits, kind=kind))
    simulate(config, tiles, seed=1)
