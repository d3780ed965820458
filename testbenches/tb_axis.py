"""cocotb bench of a package's AXI4-Stream shell (``lowbit package --interface axis``).

Runs inside the simulator against module ``<name>_axis``. ``LOWBIT_CONFIG`` names the
design point's YAML (the package's ``config.yaml``), ``LOWBIT_AXIS_MANIFEST`` the package's
``manifest.json``: the bench reads the AXI4-Stream ports and TDATA layout from it alone, as
another tool would. cocotbext-axi's ``AxiStreamSource`` / ``AxiStreamSink`` drive and take
the one input and one output port with random pauses on both sides (TVALID gaps and TREADY
stalls); every output word is checked bit for bit against the family's golden model
(``config.golden_module``'s ``model(config, codes)``), frames (TLAST) included.
"""
from __future__ import annotations

import importlib
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.drivers import seed_from_env


def _pauses(rng: random.Random, p: float):
    while True:
        yield int(rng.random() < p)


def _words(frame_bytes: bytes, lane_bytes: int) -> list[int]:
    return [int.from_bytes(frame_bytes[k:k + lane_bytes], "little")
            for k in range(0, len(frame_bytes), lane_bytes)]


@cocotb.test()
async def axis_frames_with_random_pauses(dut):
    rng = random.Random(seed_from_env())
    config = load_design(os.environ["LOWBIT_CONFIG"])
    manifest = json.loads(open(os.environ["LOWBIT_AXIS_MANIFEST"]).read())
    ports = manifest["interfaces"]["axis"]["ports"]
    (src_port,) = [p for p in ports if p["direction"] == "in"]
    (sink_port,) = [p for p in ports if p["direction"] == "out"]
    (src_field,) = src_port["fields"]
    (sink_field,) = sink_port["fields"]
    golden = importlib.import_module(config.golden_module)

    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, src_port["prefix"]), dut.aclk,
                             dut.aresetn, reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, sink_port["prefix"]), dut.aclk,
                         dut.aresetn, reset_active_level=False)
    source.set_pause_generator(_pauses(rng, 0.3))
    sink.set_pause_generator(_pauses(rng, 0.3))
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 5)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)

    w_in, w_out = src_field["width"], sink_field["width"]
    lane_in, lane_out = src_port["tdata_width"] // 8, sink_port["tdata_width"] // 8
    lo, hi = -(1 << (w_in - 1)), (1 << (w_in - 1)) - 1
    frames = [[rng.randint(lo, hi) for _ in range(rng.randint(1, 12))] for _ in range(40)]
    frames[0] = [lo, hi, 0, -1]                       # the extremes in the first frame
    for codes in frames:
        data = b"".join((c & ((1 << src_port["tdata_width"]) - 1)).to_bytes(lane_in, "little")
                        for c in codes)
        await source.send(AxiStreamFrame(data))
    checked = 0
    for codes in frames:
        expected = [int(v) & ((1 << w_out) - 1) for v in golden.model(config, codes)]
        frame = await sink.recv()
        got = [w & ((1 << w_out) - 1) for w in _words(bytes(frame.tdata), lane_out)]
        assert got == expected, f"frame {codes}: got {got}, expected {expected}"
        checked += len(codes)
    assert sink.empty()
    dut._log.info(f"{checked} words in {len(frames)} frames bit-exact through the AXI4-Stream shell")
