"""The bit-serial MAC array under Verilator: every catalogue design against its golden model.

Each design's Verilog is built once (cached by its hash in build/sim_cache) and runs the
cocotb bench ``testbenches.tb_bitserial``: every run-time precision and weight encoding under
random pressure, extremes and ternary tiles, the ideal cycle count, a reset mid-tile, long
output stalls. A generator with one wrong sign must fail it.
"""
import dataclasses

import pytest
from amaranth.back import verilog

from lowbit.rtl_gen.bitserial import BitSerialArray
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import generate, write_atomic

from conftest import bench_runner, designs

DESIGNS = designs("bitserial")
TESTS = 5
_run = bench_runner("lowbit.testbenches.tb_bitserial")


@pytest.mark.parametrize("name", DESIGNS)
def test_design_matches_golden_model_under_verilator(name, tmp_path):
    generated = generate(load_design(catalogue()[name]), tmp_path / "build")
    result = _run(generated, tmp_path)
    assert result.tests == TESTS and result.failed == 0


def test_bench_catches_activations_read_unsigned(tmp_path):
    """The Verilog of the same ports with unsigned activations must fail the bench."""
    config = load_design(catalogue()["parallel_w4a8"])  # the smallest build
    good = generate(config, tmp_path / "build")
    wrong = dataclasses.replace(config, asigned=False)
    write_atomic(good.verilog, verilog.convert(BitSerialArray(wrong), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1)
    assert result.tests == TESTS and result.failed >= 3
