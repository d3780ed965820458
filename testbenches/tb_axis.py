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
bit, TLAST included. A second test resets the shell mid-run (``aresetn`` low 3-8 cycles):
no TREADY / TVALID while the block is in reset, fresh vectors bit-exact afterwards.
``LOWBIT_SEED`` replays a run, ``LOWBIT_COUNT`` sets the vectors' size (output beats wanted;
default 40).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
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


async def _bench(dut, seed):
    """The clock, one cocotbext-axi source / sink per port (random pauses), reset applied."""
    config = load_design(os.environ["LOWBIT_CONFIG"])
    manifest = json.loads(open(os.environ["LOWBIT_AXIS_MANIFEST"]).read())
    by_stream = {p["stream"]: p for p in manifest["interfaces"]["axis"]["ports"]}
    in_ports, out_ports, _ = describe(config)
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    models = {}
    for index, p in enumerate(in_ports + out_ports):
        port = by_stream[p.name]
        cls = AxiStreamSource if port["direction"] == "in" else AxiStreamSink
        model = cls(AxiStreamBus.from_prefix(dut, port["prefix"]), dut.aclk, dut.aresetn,
                    reset_active_level=False)
        model.set_pause_generator(_pauses(random.Random(seed * 31 + index), 0.3))
        models[p.name] = model
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 5)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    return config, by_stream, in_ports, out_ports, models


def _start(models, by_stream, in_ports, vectors):
    """Send every input stream's frames of ``vectors``; returns the sending tasks."""
    tasks = []
    for k, p in enumerate(in_ports):
        beats = [b for ins, _ in vectors for b in ins[k]]
        tasks.append(cocotb.start_soon(_send(models[p.name], by_stream[p.name],
                                             frames(by_stream[p.name], beats))))
    return tasks


async def _check(models, by_stream, out_ports, vectors, seed) -> int:
    """Every output frame of ``vectors`` bit for bit; returns the words checked."""
    checked = 0
    for k, p in enumerate(out_ports):
        port = by_stream[p.name]
        lane = port["tdata_width"] // 8
        expected = frames(port, [b for _, outs in vectors for b in outs[k]])
        for n, words in enumerate(expected):
            frame = await models[p.name].recv()
            got = _words(bytes(frame.tdata), lane)
            assert got == words, (f"{p.name} frame {n} of {len(expected)} (seed {seed}): "
                                  f"got {[hex(w) for w in got]}, expected {[hex(w) for w in words]}")
            checked += len(words)
        assert models[p.name].empty(), f"{p.name}: more output than the golden model gives"
    return checked


@cocotb.test()
async def axis_frames_with_random_pauses(dut):
    seed = seed_from_env()
    config, by_stream, in_ports, out_ports, models = await _bench(dut, seed)
    count = int(os.environ.get("LOWBIT_COUNT", "40"))
    vectors = packed_vectors(config, in_ports, out_ports, random.Random(seed), count)
    _start(models, by_stream, in_ports, vectors)
    checked = await _check(models, by_stream, out_ports, vectors, seed)
    dut._log.info(f"{checked} words of {len(out_ports)} output and {len(in_ports)} input "
                  f"streams in {len(vectors)} vectors bit-exact through the AXI4-Stream shell "
                  f"(seed {seed})")


@cocotb.test()
async def axis_reset_mid_stream(dut):
    """``aresetn`` low for 3-8 cycles (the shell's minimum is 3) at a random point of a run:
    every TREADY and TVALID of the shell is low from the cycle ``aresetn`` falls until the
    block is out of reset (two edges after it rises), and fresh vectors sent afterwards come
    out bit-exact (what was in flight before the reset is dropped on both sides)."""
    seed = seed_from_env()
    rng = random.Random(seed * 7 + 3)
    config, by_stream, in_ports, out_ports, models = await _bench(dut, seed)
    count = int(os.environ.get("LOWBIT_COUNT", "40"))
    before = packed_vectors(config, in_ports, out_ports, random.Random(seed), count)
    tasks = _start(models, by_stream, in_ports, before)
    await ClockCycles(dut.aclk, rng.randint(3, 80))
    handshakes = [getattr(dut, by_stream[p.name]["tready" if p in in_ports else "tvalid"])
                  for p in in_ports + out_ports]

    async def quiet(what):
        await ReadOnly()
        high = [h._name for h in handshakes if int(h.value)]
        assert not high, f"{high} high {what} (seed {seed})"
        await RisingEdge(dut.aclk)

    await RisingEdge(dut.aclk)
    dut.aresetn.value = 0
    hold = rng.randint(3, 8)
    for cycle in range(hold):
        await quiet(f"in cycle {cycle} of aresetn low")
    for task in tasks:
        task.cancel()
    for model in models.values():
        model.clear()
    dut.aresetn.value = 1
    for cycle in range(2):
        await quiet(f"{cycle} cycles after aresetn rose")
    after = packed_vectors(config, in_ports, out_ports, random.Random(seed + 1), count)
    _start(models, by_stream, in_ports, after)
    checked = await _check(models, by_stream, out_ports, after, seed)
    dut._log.info(f"aresetn low {hold} cycles mid-run; then {checked} words bit-exact "
                  f"(seed {seed})")
