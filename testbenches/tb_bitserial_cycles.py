"""cocotb module of the bit-serial benchmark: GEMV cycle counts at full rate (no gaps, no
backpressure), every result checked against the golden model.

``LOWBIT_GEMV`` names a JSON file ``{"m": rows of W, "k": K, "points": [[wbits, abits], ...],
"out": result file}``; for each point the bench streams ``m / R`` row tiles back to back and
records the cycles from the first beat accepted to the last result, beside the ideal
``(m / R) * ceil(K / L) * steps``. The results file is a JSON list of dicts.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from lowbit.golden_models import bitserial as golden
from lowbit.testbenches.tb_bitserial import Bench


@cocotb.test()
async def gemv_cycle_counts(dut):
    """Back-to-back GEMV row tiles at each precision: measured vs. ideal cycles."""
    spec = json.loads(open(os.environ["LOWBIT_GEMV"]).read())
    bench = Bench(dut, 1, gap="none", stall="none")
    await bench.start()
    cfg = bench.config
    tiles = -(-spec["m"] // cfg.rows)
    results = []
    for wbits, abits in spec["points"]:
        abits = abits if cfg.mode == "both_serial" else None
        work = [bench.tile(wbits, True, abits, k=spec["k"]) for _ in range(tiles)]
        await RisingEdge(dut.clk)
        accepted = bench.sources["w"].sent
        while bench.sources["w"].sent == accepted:   # first beat of the GEMV
            if not bench.expected:
                for tile in work:
                    bench.queue(tile)
            await RisingEdge(dut.clk)
        start = bench.sink.cycle - 1
        await bench.drain()
        cycles = bench.sink.cycle - start
        ideal = tiles * golden.ideal_cycles(cfg, spec["k"], wbits, abits)
        results.append(dict(wbits=wbits, abits=abits, tiles=tiles, k=spec["k"], cycles=cycles,
                            ideal=ideal, latency=int(os.environ.get("LOWBIT_LATENCY", "0")),
                            macs=int(tiles * cfg.rows * cfg.cols * spec["k"])))
        dut._log.info("%s", results[-1])
    assert np.all([r["cycles"] >= r["ideal"] for r in results])
    with open(spec["out"], "w") as handle:
        json.dump(results, handle)
