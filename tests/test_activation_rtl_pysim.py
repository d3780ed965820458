"""Fast check of the activation generator in Amaranth's own simulator (no Verilator).

The full verification (every input code, backpressure, mid-stream reset) is the cocotb
bench under Verilator (tests/test_activation_sim.py); this one catches generator bugs in
seconds and runs a strided subset of inputs through each method.
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from lowbit.golden_models import activation as golden
from lowbit.rtl_gen.activation import ActivationUnit
from lowbit.rtl_gen.families import parse_design


def _config(**params):
    return parse_design({"family": "activation", "name": "dut", "params": params}, "<test>")


def _simulate(config, codes):
    dut = ActivationUnit(config)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    received = []

    async def stream(ctx):
        ctx.set(dut.o.ready, 1)
        queue = [int(c) for c in codes]
        cycles = 0
        while len(received) < len(codes):
            if queue:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"data": queue[0], "last": 0})
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_valid, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload)
            if i_valid and i_ready:
                queue.pop(0)
            if o_valid:
                received.append(o_payload.data)
            cycles += 1
            assert cycles < len(codes) + 100, "pipeline stalled"
        return cycles

    sim.add_testbench(stream)
    sim.run()
    return np.array(received, dtype=np.int64), dut.latency


@pytest.mark.parametrize("function,method,fmt", [
    ("gelu", "poly", "Q3.4"), ("silu", "poly", "Q3.4"), ("gelu", "ibert", "Q3.4"),
    ("gelu", "table", "Q3.4"), ("silu", "table", "Q2.5"),
    ("gelu", "poly", "Q4.11"), ("silu", "poly", "Q4.11"), ("gelu", "ibert", "Q4.11"),
])
def test_generator_matches_golden_model(function, method, fmt):
    config = _config(function=function, method=method, input=fmt, order=2, segments=32)
    codes = config.input.all_values()
    if len(codes) > 512:  # strided subset plus the extremes; Verilator covers every code
        codes = np.unique(np.concatenate([codes[::197], codes[:3], codes[-3:], [-1, 0, 1]]))
    actual, _ = _simulate(config, codes)
    expected = golden.model(config, codes)
    mismatch = np.nonzero(actual != expected)[0]
    assert not len(mismatch), (
        f"first mismatch at x={codes[mismatch[0]]}: expected {expected[mismatch[0]]}, "
        f"got {actual[mismatch[0]]} ({len(mismatch)} mismatches)")
