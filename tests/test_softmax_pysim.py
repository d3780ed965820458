"""Fast check of the softmax generator in Amaranth's own simulator (no Verilator).

Random rows of every length 1..n_max (random masks where the design has them) go through
small units of both max modes under random gaps and backpressure
(``testbenches.pysim_streams``); every output beat, ``last`` included, must equal the golden
model's. The full bench runs under Verilator in tests/test_softmax_sim.py. The seed is
drawn fresh and printed (replay: ``LOWBIT_SEED=<seed>``).
"""
import os
import random

import pytest

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design, parse_design
from lowbit.rtl_gen.generate import build_component
from lowbit.testbenches.pysim_streams import run_streams


def _seed() -> int:
    seed = int(os.environ.get("LOWBIT_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"seed = {seed}")
    return seed


@pytest.mark.parametrize("params", [
    dict(input="Q3.2", output="UQ0.8", n_max=6, max_mode="buffer"),
    dict(input="Q3.2", output="UQ0.8", n_max=6, max_mode="online"),
    dict(input="Q2.3", output="UQ1.6", n_max=4, max_mode="buffer", mask=True, exp_order=0),
], ids=["buffer", "online", "masked_table"])
def test_rows_match_golden_model(params):
    seed = _seed()
    config = parse_design({"family": "softmax", "name": "dut", "params": params}, "<test>")
    rng = random.Random(seed)
    fmt, n_max = config.input, config.n_max
    constants = golden.constants_of(config)
    lengths = list(range(1, n_max + 1)) + [rng.randint(1, n_max) for _ in range(4)]
    beats, expected = [], []
    for n in lengths:
        x = [rng.randint(fmt.min_int, fmt.max_int) for _ in range(n)]
        mask = [rng.random() < 0.3 for _ in range(n)] if config.mask else [False] * n
        out = golden.row_model(constants, x, mask).tolist()
        for j in range(n):
            beat = {"data": x[j], "last": int(j == n - 1)}
            if config.mask:
                beat["mask"] = int(mask[j])
            beats.append(beat)
            expected.append({"data": out[j], "last": int(j == n - 1)})
    got = run_streams(build_component(config), {"i": beats}, output="o", count=len(expected),
                      seed=seed)
    for index, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"beat {index}: expected {e}, got {g} (seed {seed})"


@pytest.mark.parametrize("name", [n for n in sorted(catalogue()) if n.startswith("softmax_")])
def test_witness_rows_reach_every_value_bin(name):
    """The bench's directed rows (``softmax_coverage.witness_rows``) reach every value bin the
    bench declares for the design (row length, max position and parity, output ends, exp
    underflow and rounding to 0, the online running max), by the golden model; the mask
    bins come from the bench's own masked rows, the cut row from ``split_rows``."""
    from lowbit.testbenches.softmax_coverage import declared, row_bins, witness_rows

    config = load_design(catalogue()[name])
    constants = golden.constants_of(config)
    hit = set()
    for x, mask in witness_rows(config, constants, random.Random(1)):
        hit.update(row_bins(config, constants, x, mask or [False] * len(x)))
    wanted = {(point, b) for point in ("max_position", "max_parity", "output", "exp", "running_max")
              for b in declared(config)[point]} | {("row_length", "one"), ("row_length", "n_max")}
    assert wanted <= hit, f"{name}: witness rows miss {sorted(wanted - hit)}"
