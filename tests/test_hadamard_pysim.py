"""Fast check of the Hadamard rotation generator in Amaranth's own simulator (no Verilator).

Small units (both delay-line kinds: shift-register pairs for short spans, a ``Memory`` for
spans from ``MEMORY_SPAN``; every normalisation the config allows at one length: no shift,
the orthonormal ``n/2``, and ``n``, whose output is one bit wider) take random vectors, the
input extremes (all most negative, all most positive, alternating max/min: each output
bound of ``golden_models.hadamard.output_bounds``) and impulses, back to back under random
gaps and backpressure (``testbenches.pysim_streams``); every output beat, ``last``
included, must equal the golden model's. The full bench runs under Verilator in
tests/test_hadamard_sim.py. The seed is drawn fresh and printed (replay:
``LOWBIT_SEED=<seed>``).
"""
import os
import random

import numpy as np
import pytest

from lowbit.golden_models import hadamard as golden
from lowbit.rtl_gen import hadamard as hd
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.generate import build_component
from lowbit.testbenches.pysim_streams import run_streams


def _seed() -> int:
    seed = int(os.environ.get("LOWBIT_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"seed = {seed}")
    return seed


def _config(length: int, width: int, shift: int):
    return parse_design({"family": "hadamard", "name": "dut",
                         "params": {"length": length, "width": width, "shift": shift}}, "<test>")


def _vectors(config, rng: random.Random, count: int) -> np.ndarray:
    """The extremes (whose results reach both output bounds), impulses at either end, then
    ``count`` uniform random vectors."""
    n, lo, hi = config.length, -(1 << (config.width - 1)), (1 << (config.width - 1)) - 1
    impulse, impulse_end = [0] * n, [0] * n
    impulse[0], impulse_end[-1] = hi, lo
    rows = [[lo] * n, [hi] * n, [hi, lo] * (n // 2), [lo, hi] * (n // 2), impulse, impulse_end]
    rows += [[rng.randint(lo, hi) for _ in range(n)] for _ in range(count)]
    return np.array(rows, dtype=np.int64)


CASES = [(4, 4, 0), (4, 4, 1), (4, 4, 2), (8, 5, 1), (16, 3, 2), (32, 6, 5)]


@pytest.mark.parametrize("length,width,shift", CASES,
                         ids=[f"n{n}_w{w}_s{s}" for n, w, s in CASES])
def test_vectors_match_golden_model(length, width, shift):
    seed = _seed()
    config = _config(length, width, shift)
    rng = random.Random(seed)
    vectors = _vectors(config, rng, max(4, 128 // length))
    expected = golden.model(config, vectors)
    lo, hi = golden.output_bounds(width, config.log2_length, shift)
    assert {lo, hi} <= set(expected.ravel().tolist()), "the stimulus must reach both bounds"
    beats = [{"data": int(x), "last": int(j == length - 1)}
             for row in vectors.tolist() for j, x in enumerate(row)]
    want = [{"data": int(y), "last": int(j == length - 1)}
            for row in expected.tolist() for j, y in enumerate(row)]
    got = run_streams(build_component(config), {"i": beats}, output="o", count=len(want),
                      seed=seed)
    for index, (e, g) in enumerate(zip(want, got)):
        assert g == e, (f"beat {index} (vector {index // length}, element {index % length}): "
                        f"expected {e}, got {g} (seed {seed})")


def test_cases_cover_both_delay_line_kinds():
    """The cases above build pair (shift-register) stages and memory stages."""
    kinds = set()
    for length, width, _ in CASES:
        n = length.bit_length() - 1
        for k, w in enumerate(golden.stage_widths(width, n)):
            kinds.add(hd.uses_memory(length >> (k + 1), w))
    assert kinds == {True, False}


def test_planted_rounding_fault_fails():
    """A unit that rounds ties upward (``test_hadamard_sim._RoundsTiesUp``) differs from the
    golden model on the same stimulus (so the check above can fail)."""
    from test_hadamard_sim import _RoundsTiesUp

    seed = _seed()
    config = _config(8, 5, 1)
    vectors = _vectors(config, random.Random(seed), 16)
    expected = golden.model(config, vectors).ravel().tolist()
    beats = [{"data": int(x), "last": int(j == 7)}
             for row in vectors.tolist() for j, x in enumerate(row)]
    got = run_streams(_RoundsTiesUp(config), {"i": beats}, output="o", count=len(beats),
                      seed=seed)
    assert any(g["data"] != y for g, y in zip(got, expected)), f"fault not seen (seed {seed})"
