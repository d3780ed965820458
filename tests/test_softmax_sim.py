"""The softmax unit under Verilator: every catalogue design against its golden model.

Each design's Verilog is built once (cached by its hash in build/sim_cache) and runs the
cocotb bench ``testbenches.tb_softmax``: random rows under pressure, corner rows, full-rate
throughput, a reset mid-row, long stalls.
"""
import dataclasses

import pytest
from amaranth.back import verilog

from lowbit.golden_models import softmax as golden
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import generate, write_atomic
from lowbit.rtl_gen.softmax import SoftmaxUnit

from conftest import bench_runner, designs

DESIGNS = designs("softmax")
_run = bench_runner("lowbit.testbenches.tb_softmax")


@pytest.mark.parametrize("name", DESIGNS)
def test_design_matches_golden_model_under_verilator(name, tmp_path):
    generated = generate(load_design(catalogue()[name]), tmp_path / "build")
    result = _run(generated, tmp_path)
    assert result.tests == 5 and result.failed == 0


def test_bench_catches_a_one_lsb_exp2_error(tmp_path):
    """A generator whose exp2 table is off by one unit in one segment must fail the bench."""
    config = load_design(catalogue()["softmax_q5_2_u8"])
    good = generate(config, tmp_path / "build")

    class Tampered(SoftmaxUnit):
        def __init__(self, cfg):
            super().__init__(cfg)
            rows = [list(r) for r in self.constants.coefs]
            rows[len(rows) // 2][0] += 1 << (self.constants.hf - cfg.output.frac_bits)  # ~1 output LSB
            self.constants = dataclasses.replace(self.constants, coefs=tuple(map(tuple, rows)))

    tampered = Tampered(config)
    assert tampered.constants != golden.constants_of(config)
    write_atomic(good.verilog, verilog.convert(tampered, name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1)
    assert result.failed >= 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 9))
@pytest.mark.parametrize("name", DESIGNS)
def test_many_seeds(name, seed, tmp_path):
    generated = generate(load_design(catalogue()[name]), tmp_path / "build")
    result = _run(generated, tmp_path, seed=1000 + seed)
    assert result.tests == 5 and result.failed == 0
