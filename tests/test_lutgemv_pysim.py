"""Fast check of the two GEMV generators (``lutgemv`` and its multiplier baseline
``gemv_mult``) in Amaranth's own simulator (no Verilator).

Vectors of random length (one group up to ``k_max``) at every run-time precision with random
zero points, each with its command and weight pass of one or two row tiles (``tables: ram``:
one to three rows per lane, in its group-outer order with ``last`` on every sweep), go through small
units under random gaps on every input and random backpressure on ``y``
(``testbenches.pysim_streams``); every result beat, ``last`` included, must equal the golden
model's. The full benches run under Verilator in tests/test_lutgemv_sim.py. The seed is drawn
fresh and printed (replay: ``LOWBIT_SEED=<seed>``).
"""
import os
import random

import numpy as np
import pytest

from lowbit.golden_models import lutgemv as golden
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.generate import build_component
from lowbit.testbenches.pysim_streams import run_streams


def _seed() -> int:
    seed = int(os.environ.get("LOWBIT_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"seed = {seed}")
    return seed


def _raw(port, data: int, last: int) -> int:
    """``{data, last}`` packed: data in the low bits, ``last`` at its field's offset."""
    offsets = {name: field.offset for name, field in port.payload.shape()}
    return data | last << offsets["last"]


CASES = [
    ("lutgemv", dict(group=4, rows=2, bits_max=3, act_bits=5, k_max=16)),
    ("lutgemv", dict(group=2, rows=3, bits_max=2, act_bits=4, k_max=8, symmetric=False)),
    ("lutgemv", dict(group=2, rows=2, bits_max=2, act_bits=4, k_max=16, lookups=2)),
    ("gemv_mult", dict(group=2, rows=2, wbits=3, act_bits=5, k_max=8)),
    ("lutgemv", dict(tables="ram", group=4, rows=3, bits_max=3, act_bits=5, k_max=16, m_max=9)),
    ("lutgemv", dict(tables="ram", group=3, rows=2, bits_max=2, act_bits=4, k_max=12, m_max=6,
                     symmetric=False)),
    ("lutgemv", dict(tables="ram", group=8, rows=2, bits_max=2, act_bits=6, k_max=24, m_max=4)),
]


@pytest.mark.parametrize("family, params", CASES, ids=["g4", "g2_full", "g2_l2", "mult", "ram_g4",
                                                       "ram_g3_full", "ram_g8"])
def test_vectors_match_golden_model(family, params):
    seed = _seed()
    config = parse_design({"family": family, "name": "dut", "params": params}, "<test>")
    unit = build_component(config)
    rng = np.random.default_rng(seed)
    span, bits_max = golden.span(config), getattr(config, "bits_max", None) or config.wbits
    queues = {"cmd": [], "x": [], "w": []}
    expected = []
    for bits in list(range(1, bits_max + 1)) * 2:
        k = span * int(rng.integers(1, config.k_max // span + 1))
        tiles = min(3, config.m_max // config.rows) if golden.lutgemv_ram.in_ram(config) else 2
        m = config.rows * int(rng.integers(1, tiles + 1))
        zero = int(rng.integers(0, 1 << bits))
        codes = rng.integers(0, 1 << bits, (m, k))
        x = rng.integers(-(1 << (config.act_bits - 1)), 1 << (config.act_bits - 1), k)
        queues["cmd"].append({"bits": bits, "zero_point": zero, "last": 1})
        xs = golden.activation_beats(x, span, config.act_bits)
        queues["x"] += [_raw(unit.x, b, int(j == len(xs) - 1)) for j, b in enumerate(xs)]
        ws = golden.weight_beats(config, codes, bits)
        lasts = golden.weight_lasts(config, m, k, bits)
        queues["w"] += [_raw(unit.w, b, last) for b, last in zip(ws, lasts)]
        y = golden.model(config, codes, zero, x, bits).tolist()
        expected += [{"data": v, "last": int(r == m - 1)} for r, v in enumerate(y)]
    got = run_streams(unit, queues, output="y", count=len(expected), seed=seed)
    for index, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"result {index}: expected {e}, got {g} (seed {seed})"
