"""cocotb bench of a package's AXI4-Stream shell (``lowbit package --interface axis``).

Runs inside the simulator against module ``<name>_axis``. ``LOWBIT_CONFIG`` names the
design point's YAML (the package's ``config.yaml``), ``LOWBIT_AXIS_MANIFEST`` the package's
``manifest.json``: the bench reads the AXI4-Stream ports and TDATA layout from it alone, as
another tool would, for every stream of the block (one source per input port, one sink per
output port). cocotbext-axi's ``AxiStreamSource`` / ``AxiStreamSink`` drive and take them
with random pauses on every side (TVALID gaps and TREADY stalls, a pause generator of its
own per port); the stimulus and the expected beats are the family's host adapter's
(``host_vectors``: random vectors from the golden model's input space with the golden
model's results), each vector one frame per stream (TLAST on a beat whose ``last`` field is
set; a port without TLAST takes one beat per frame). Every output word is checked bit for
bit, TLAST included. ``LOWBIT_SEED`` replays a run, ``LOWBIT_COUNT`` sets the vectors' size
(output beats wanted; default 40).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from lowbit.fpga.host import describe, packed_vectors
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.drivers import seed_from_env


def _pauses(rng: random.Random, p: float):
    while True:
        yield int(rng.random() < p)


def to_axis(port: dict, raw: int) -> tuple[int, int]:
    """``(tdata, tlast)`` of a payload, by the manifest's field places."""
    tdata = 0
    for f in port["fields"]:
        tdata |= ((raw >> f["payload_lsb"]) & ((1 << f["width"]) - 1)) << f["lsb"]
    last = (raw >> port["last_payload_lsb"]) & 1 if port["tlast"] else 1
    return tdata, last


def frames(port: dict, beats: list[int]) -> list[list[int]]:
    """TDATA words grouped into frames, each ending at a beat with TLAST."""
    out, frame = [], []
    for raw in beats:
        tdata, last = to_axis(port, raw)
        frame.append(tdata)
        if last:
            out.append(frame)
            frame = []
    assert not frame, f"{port['prefix']}: beats after the last TLAST {frame}"
    return out


def _words(frame_bytes: bytes, lane_bytes: int) -> list[int]:
    return [int.from_bytes(frame_bytes[k:k + lane_bytes], "little")
            for k in range(0, len(frame_bytes), lane_bytes)]


async def _send(source, port, words_per_frame):
    lane = port["tdata_width"] // 8
    for words in words_per_frame:
        await source.send(AxiStreamFrame(b"".join(w.to_bytes(lane, "little") for w in words)))


@cocotb.test()
async def axis_frames_with_random_pauses(dut):
    seed = seed_from_env()
    rng = random.Random(seed)
    config = load_design(os.environ["LOWBIT_CONFIG"])
    manifest = json.loads(open(os.environ["LOWBIT_AXIS_MANIFEST"]).read())
    by_stream = {p["stream"]: p for p in manifest["interfaces"]["axis"]["ports"]}
    in_ports, out_ports, _ = describe(config)
    count = int(os.environ.get("LOWBIT_COUNT", "40"))
    vectors = packed_vectors(config, in_ports, out_ports, random.Random(seed), count)

    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    sources, sinks = {}, {}
    for index, p in enumerate(in_ports + out_ports):
        port = by_stream[p.name]
        cls = AxiStreamSource if port["direction"] == "in" else AxiStreamSink
        model = cls(AxiStreamBus.from_prefix(dut, port["prefix"]), dut.aclk, dut.aresetn,
                    reset_active_level=False)
        model.set_pause_generator(_pauses(random.Random(seed * 31 + index), 0.3))
        (sources if port["direction"] == "in" else sinks)[p.name] = model
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 5)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)

    for k, p in enumerate(in_ports):
        beats = [b for ins, _ in vectors for b in ins[k]]
        cocotb.start_soon(_send(sources[p.name], by_stream[p.name], frames(by_stream[p.name], beats)))
    checked = 0
    for k, p in enumerate(out_ports):
        port = by_stream[p.name]
        lane = port["tdata_width"] // 8
        expected = frames(port, [b for _, outs in vectors for b in outs[k]])
        for n, words in enumerate(expected):
            frame = await sinks[p.name].recv()
            got = _words(bytes(frame.tdata), lane)
            assert got == words, (f"{p.name} frame {n} of {len(expected)} (seed {seed}): "
                                  f"got {[hex(w) for w in got]}, expected {[hex(w) for w in words]}")
            checked += len(words)
        assert sinks[p.name].empty(), f"{p.name}: more output than the golden model gives"
    dut._log.info(f"{checked} words of {len(out_ports)} output and {len(in_ports)} input "
                  f"streams in {len(vectors)} vectors bit-exact through the AXI4-Stream shell "
                  f"(seed {seed})")
