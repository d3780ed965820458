"""The activation unit under Verilator: every catalogue design against its golden model.

Each design's Verilog is built once (cached by its hash in build/sim_cache) and runs the
cocotb bench ``testbenches.tb_activation``: every input code with random gaps and
backpressure, corners at full rate, a mid-stream reset, long stalls.
"""
import dataclasses

import pytest
from amaranth.back import verilog

from lowbit.golden_models.activation import PolyTable, fit_poly
from lowbit.rtl_gen.activation import ActivationUnit
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import generate, write_atomic

from conftest import bench_runner, designs

DESIGNS = designs("activation")
_run = bench_runner("lowbit.testbenches.tb_activation")


@pytest.mark.parametrize("name", DESIGNS)
def test_design_matches_golden_model_under_verilator(name, tmp_path):
    generated = generate(load_design(catalogue()[name]), tmp_path / "build")
    result = _run(generated, tmp_path)
    assert result.tests == 4 and result.failed == 0


def test_bench_catches_a_one_lsb_coefficient_error(tmp_path):
    """A generator whose ROM differs by one coefficient LSB in one segment must fail."""
    config = load_design(catalogue()["gelu_q4_11"])
    good = generate(config, tmp_path / "build")

    class Tampered(ActivationUnit):
        def __init__(self, cfg):
            super().__init__(cfg)
            rows = [list(r) for r in self.table.coefs]
            rows[3][0] += 1 << (self.table.frac - cfg.output.frac_bits)  # one output LSB
            self.table = dataclasses.replace(self.table, coefs=tuple(map(tuple, rows)))

    tampered = Tampered(config)
    assert isinstance(tampered.table, PolyTable)
    assert tampered.table != fit_poly(config.function, config.input, config.output, config.order,
                                      config.segments, config.guard_bits)
    write_atomic(good.verilog, verilog.convert(tampered, name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1)
    assert result.failed >= 1
