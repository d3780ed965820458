"""Drive a stream component in Amaranth's own simulator (fast, no Verilator): input queues
of payloads with random gaps, random backpressure on one output, the accepted output
payloads back.

``run_streams(dut, {"x": [payload, ...], ...}, output="y", count=N, seed=S)`` presents each
queue's head on its port (a field dict, packed through the port's payload layout, or a raw
int), holds it until accepted (the stream rule), idles a port with probability ``p_gap``
per cycle, drops ``output.ready`` with probability ``p_stall``, and returns the first
``count`` payloads accepted on ``output`` as field dicts (``View``s unpacked through the
layout: ``{"data": ..., "last": ...}``; array fields as lists). It fails if ``max_cycles``
pass first, naming how many results arrived. ``seed`` drives every random choice, so a run
replays exactly.
"""
from __future__ import annotations

import random
from typing import Any

from amaranth.lib import data
from amaranth.sim import Simulator


def pack(port, beat: Any) -> int:
    """A payload for ``port``: a raw int as is, a field dict through its struct layout."""
    if isinstance(beat, int):
        return beat
    return port.payload.shape().const(beat).as_value().value


def unpack(port, raw: int) -> dict:
    """A raw payload of ``port`` as a field dict (signed fields read signed)."""
    layout = port.payload.shape()
    view = layout.from_bits(raw)

    def plain(value):
        if isinstance(value, data.Const):
            shape = value.shape()
            if isinstance(shape, data.ArrayLayout):
                return [plain(value[i]) for i in range(shape.length)]
            return {name: plain(value[name]) for name, _ in shape}
        return int(value)

    return plain(view)


def run_streams(dut, queues: dict[str, list], *, output: str, count: int, seed: int,
                p_gap: float = 0.3, p_stall: float = 0.3, max_cycles: int = 200_000) -> list[dict]:
    """See the module docstring."""
    ports = {name: getattr(dut, name) for name in queues}
    queues = {name: [pack(ports[name], beat) for beat in beats] for name, beats in queues.items()}
    out = getattr(dut, output)
    rng = random.Random(seed)
    received: list[int] = []

    async def bench(ctx):
        presented = {name: False for name in ports}
        for cycle in range(max_cycles):
            for name, port in ports.items():
                if not presented[name] and queues[name] and rng.random() >= p_gap:
                    ctx.set(port.payload.as_value(), queues[name][0])
                    ctx.set(port.valid, 1)
                    presented[name] = True
            ctx.set(out.ready, int(rng.random() >= p_stall))
            samples = await ctx.tick().sample(
                *(p.valid for p in ports.values()), *(p.ready for p in ports.values()),
                out.valid, out.ready, out.payload.as_value())
            samples = samples[2:]  # (clk, rst) come first
            n = len(ports)
            for (name, port), valid, ready in zip(ports.items(), samples[:n], samples[n:2 * n]):
                if valid and ready:
                    queues[name].pop(0)
                    presented[name] = False
                    ctx.set(port.valid, 0)
            o_valid, o_ready, o_payload = samples[2 * n:]
            if o_valid and o_ready:
                received.append(o_payload)
            if len(received) >= count:
                return
        raise AssertionError(f"{len(received)} of {count} results on {output} within "
                             f"{max_cycles} cycles (seed {seed})")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return [unpack(out, raw) for raw in received]


__all__ = ["run_streams", "pack", "unpack"]
