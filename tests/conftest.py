"""What the simulation tests share: the build cache, the catalogue filter, the bench runner.

Test files import the plain helpers (``from conftest import CACHE, designs, bench_runner``; the
tests folder is on ``sys.path`` under pytest's default import mode); the ``sim_cache`` fixture
is found by pytest itself.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.runner import run_generated

REPO = Path(__file__).resolve().parent.parent
#: Verilator builds, keyed by content, shared by every test and kept across pytest runs.
CACHE = REPO / "build" / "sim_cache"


def designs(*families: str) -> list[str]:
    """The catalogue's design names whose family is one of ``families``, in catalogue order."""
    return [name for name, path in catalogue().items() if load_design(path).family in families]


def bench_runner(test_module: str):
    """``_run(generated, tmp_path, check=True, seed=None, testcase=None)``: the cocotb bench
    ``test_module`` on a generated design, built in :data:`CACHE`, run in ``tmp_path / "sim"``."""

    def _run(generated, tmp_path, check=True, seed=None, testcase=None):
        return run_generated(generated, test_module, cache_root=CACHE, test_dir=tmp_path / "sim",
                             seed=seed, check=check, testcase=testcase)

    return _run


@pytest.fixture(scope="session")
def sim_cache() -> Path:
    """:data:`CACHE`, created."""
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


@pytest.fixture
def ctrl_c():
    """``ctrl_c()`` delivers a real SIGINT to this process, as Ctrl-C does. Python turns
    SIGINT into KeyboardInterrupt only if the signal was not ignored when it started (a
    background job of a shell without job control starts with SIGINT ignored), so the
    fixture installs that handler for the test and restores the previous one after."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield lambda: signal.raise_signal(signal.SIGINT)
    signal.signal(signal.SIGINT, previous)
