"""The worst-case search of the softmax error (scripts/softmax_search.py) against random rows,
the golden model's own metrics and the bound README states."""
from pathlib import Path

import numpy as np
import pytest

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.families import load_design
from lowbit.scripts import bench_softmax, softmax_search

REPO = Path(__file__).resolve().parent.parent
SMALL = REPO / "hw/softmax_q4_4_u1_7_n16.yaml"


@pytest.fixture(scope="module")
def small():
    cfg = load_design(SMALL)
    return cfg, softmax_search.search(cfg)


def _metrics(cfg, x):
    return golden.row_metrics(cfg, np.array(x), golden.model(cfg, [np.array(x)])[0])


def test_search_beats_the_random_sets(small):
    cfg, result = small
    c = golden.constants_of(cfg)
    sets = bench_softmax.row_sets(cfg, np.random.default_rng(bench_softmax.SEED))
    for key in softmax_search.KEYS:
        random_worst = max(golden.row_metrics(cfg, x, golden.row_model(c, x))[key]
                           for xs in sets.values() for x in xs)
        assert result.top(key).error(key) >= random_worst, key


def test_reported_errors_are_the_golden_models(small):
    cfg, result = small
    for key in softmax_search.KEYS:
        assert [f.error(key) for f in result.worst[key]] == sorted((f.error(key) for f in result.worst[key]),
                                                                    reverse=True)
        for found in result.worst[key]:
            assert found.metrics == _metrics(cfg, found.x)


def test_buffer_screen_equals_the_golden_model():
    """The vectorised screen of two-level rows gives row_metrics' figures on those rows."""
    cfg = load_design(SMALL)
    c = golden.constants_of(cfg)
    rng = np.random.default_rng(5)
    span = cfg.input.max_int - cfg.input.min_int
    n = rng.integers(1, cfg.n_max + 1, 300)
    k = np.minimum(rng.integers(1, cfg.n_max + 1, 300), n)
    gap = rng.integers(1, span + 1, 300)
    full, unsat, _ = softmax_search._screen_two_level(cfg, c, n, k, gap,
                                                      golden.exponentials(c, np.arange(span + 1)))
    for i in range(300):
        hi = cfg.input.max_int
        m = _metrics(cfg, [hi] * k[i] + [hi - gap[i]] * (n[i] - k[i]))
        assert full[i] == pytest.approx(m["max_err"], abs=1e-9)
        assert unsat[i] == pytest.approx(m["max_err_unsaturated"], abs=1e-9)


def _readme_softmax():
    text = (REPO / "README.md").read_text()
    return text.split("### Softmax unit", 1)[1].split("\n### ", 1)[0]


def test_readme_states_the_bounds(small):
    cfg, result = small
    section = " ".join(_readme_softmax().split())
    for mode, bound in softmax_search.BOUND_LSB.items():
        assert f"{bound:.2f} LSB ({mode}" in section, mode
    assert result.top().error() <= softmax_search.BOUND_LSB[cfg.max_mode]


@pytest.mark.slow
@pytest.mark.parametrize("design", sorted(p.name for p in (REPO / "hw").glob("softmax_*.yaml")))
def test_every_design_within_the_readme_bound(design):
    cfg = load_design(REPO / "hw" / design)
    top = softmax_search.search(cfg).top()
    assert top.metrics == _metrics(cfg, top.x)
    assert top.error() <= softmax_search.BOUND_LSB[cfg.max_mode]
