"""Mutation campaigns (testbenches/mutation.py): the small campaign CI runs so the machinery
cannot rot, the content cache, the equivalence check, and the source line of each mutant.

The mutants (Yosys ``mutate -list -seed``) and the bench seed are fixed by the campaign
seed, so a campaign replays exactly.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.mutation import (bench_sources, campaign, describe, equivalent,
                                         mutation_list, prepare, source_line)

from conftest import CACHE

SEED = 1


def test_source_line_and_description():
    line = ("mutate -mode inv -module m -cell $366 -port Q -portbit 1 -wire part_sub0 -wirebit 1 "
            "-src /somewhere/lowbit/rtl_gen/pipeline.py:91 -src /x/rtl_gen/fixed.py:3")
    assert source_line(line) == "rtl_gen/pipeline.py:91"
    assert describe(line) == "-mode inv -module m -cell $366 -port Q -portbit 1"
    assert source_line("mutate -mode none") == "?"


def test_small_campaign_on_gelu(tmp_path):
    """Four mutants of gelu_q3_4 through its bench; a rerun is served from the cache."""
    config = load_design(catalogue()["gelu_q3_4"])
    result = campaign(config, tmp_path / "mut", count=4, seed=SEED, cache_root=CACHE)
    print(result.as_dict())
    assert result.mutants == 4
    statuses = [m["status"] for m in result.results]
    assert set(statuses) <= {"killed", "survived", "equivalent", "undecided", "error"}
    assert (result.killed + result.equivalent + len(result.survivors) + result.errors
            == result.mutants)
    assert result.killed >= 1, "no mutant killed: the bench or the mutation flow is broken"
    for mutant in result.results:
        assert mutant["source"].startswith("rtl_gen/"), mutant  # each names its generator line
        assert "-mode" in mutant["mutation"]
        if mutant["status"] == "killed":   # by a failed check, named, after a real run
            assert "tests failed; first: " in mutant["detail"] or "crashed" in mutant["detail"]
            assert mutant["bench_seconds"] > 0
    again = campaign(config, tmp_path / "mut", count=4, seed=SEED, cache_root=CACHE)
    assert [m["status"] for m in again.results] == statuses
    assert again.cached == 4 and all(m["cached"] for m in again.results)
    # a campaign served from the cache reports the bench time its results stand on
    assert again.bench_seconds == result.bench_seconds > 0


def test_bench_key_follows_the_benchs_imports():
    """A change to a shared bench part (drivers, golden model) must rerun the mutants."""
    names = {p.name for p in bench_sources("lowbit.testbenches.tb_hadamard")}
    assert {"tb_hadamard.py", "drivers.py", "stream_pair.py", "coverage.py",
            "hadamard.py", "fixedpoint.py"} <= names, names


def test_equivalence_check_tells_apart(tmp_path):
    """The identity mutation is proven equivalent; an inverted output data bit is not."""
    config = load_design(catalogue()["gelu_q3_4"])
    work = tmp_path / "mut"
    prepare(config, work)
    (work / "none").mkdir()
    assert equivalent(config, "mutate -mode none", work / "none") == "equivalent"
    lines = [l for l in mutation_list(config, work, 40, SEED) if "-port Q" in l]
    assert lines, "no register-output mutation in the list"
    (work / "q").mkdir()
    assert equivalent(config, lines[0], work / "q") in ("different", "undecided")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gelu_q3_4", "softmax_q5_2_u8", "lutgemv_g4_n8",
                                  "gemv_mult_w2", "bitserial_w2a8"])
def test_campaign_per_family(name, tmp_path):
    config = load_design(catalogue()[name])
    result = campaign(config, tmp_path / "mut", count=10, seed=SEED, cache_root=CACHE)
    print(result.as_dict())
    assert result.mutants == 10 and result.killed >= 1
