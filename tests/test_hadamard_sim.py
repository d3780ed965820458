"""The Hadamard rotation unit under Verilator: catalogue designs against the golden model.

Each design's Verilog is built once (cached by its hash in build/sim_cache) and runs the
cocotb bench ``testbenches.tb_hadamard``: random vectors under pressure, corner vectors at
full rate (one element per cycle), a reset mid-vector, long stalls (every vector's last
result held back), with its declared cover bins (``coverage.hadamard_points``: every one
hit, the export ``coverage.json`` beside ``results.xml``). Planted faults (a rounding that
breaks ties upward, a delay line read before its word is written) must fail it.
"""
import pytest
from amaranth.back import verilog

from lowbit.rtl_gen import hadamard as hd
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import generate, write_atomic
from lowbit.testbenches.coverage import read_summary

from conftest import bench_runner, designs

SLOW = ("hadamard_n1024", "hadamard_minilm_n128", "hadamard_minilm_n512")  # n64 in the default suite
DESIGNS = [pytest.param(n, marks=pytest.mark.slow if n in SLOW else ()) for n in designs("hadamard")]
_run = bench_runner("lowbit.testbenches.tb_hadamard")


@pytest.mark.parametrize("name", DESIGNS)
def test_design_matches_golden_model_under_verilator(name, tmp_path):
    config = load_design(catalogue()[name])
    generated = generate(config, tmp_path / "build")
    result = _run(generated, tmp_path)
    assert result.tests == 4 and result.failed == 0
    cov = read_summary(result.results_xml.parent)
    rounding = 0 if config.shift == 0 else 3 if config.shift == 1 else 5
    # random: input 2, stall 1; corners: input 2, output 2, rounding, back_to_back 2;
    # reset 2; long stalls 2
    assert cov is not None and not cov["missed"], cov
    assert cov["bins"] == 2 + 1 + 2 + 2 + rounding + 2 + 2 + 2, cov


class _RoundsTiesUp(hd.HadamardUnit):
    """Rounds half up (``(x + 2**(s-1)) >> s``) instead of half to even."""

    def _round(self, m, valid, x):
        return super()._round(m, valid, x + _tie_up(x, self.config.shift))


def _tie_up(x, shift):
    """What makes round-half-even of ``x + _tie_up`` equal round-half-up of ``x``: +1 on a
    tie whose quotient is even (half-even would round it down)."""
    low = x.as_unsigned()[:shift]
    tie = low == (1 << (shift - 1))
    even = ~x.as_unsigned()[shift]
    return tie & even


class _ReadsTooEarly(hd.HadamardUnit):
    """Memory delay lines for spans 2 and 4 too (``D <= W``): a word is read before it is
    written."""

    def __init__(self, config):
        super().__init__(config)
        self.memory = [span >= 2 for span in self.spans]


@pytest.mark.parametrize("fault", [_RoundsTiesUp, _ReadsTooEarly])
def test_bench_catches_a_planted_fault(fault, tmp_path):
    config = load_design(catalogue()["hadamard_n64"])
    good = generate(config, tmp_path / "build")
    write_atomic(good.verilog, verilog.convert(fault(config), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1)
    assert result.failed >= 1
