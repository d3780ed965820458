"""cocotb bench of the whole board core: UART pins in and out, the host driver on the other end.

The DUT is :class:`fpga.boards.BoardCore` (UART receiver and transmitter, host bridge, the
compute block, LEDs) as :mod:`fpga.board_sim` writes it; only the PLL and the IO buffers of
the real board top are left out (Verilator has no model of them). A ``cocotbext-uart``
source and sink stand in for the USB-UART. The host side is :class:`fpga.host.Device`, the
same code that drives a real board: it runs in a cocotb bridge thread and its transport
writes and reads through the UART models.

Environment: ``LOWBIT_CONFIG`` (design YAML), ``LOWBIT_SEED``, ``LOWBIT_BOARD`` (JSON from
:func:`fpga.board_sim.sim_parameters`: clock, baud, watchdog, design id), ``LOWBIT_COUNT``
(random vectors of the end-to-end test).

Tests
-----
* ``driver_end_to_end``: INFO (design id, stream widths), RESET, then random vectors plus
  corners from the family adapter (every input and output stream of the block: one
  section per stream in each RUN frame), as many whole vectors per run as fit the
  buffers, against the golden model.
* ``damaged_frames_rejected``: a flipped bit, a lost byte, a truncated frame, an extra byte,
  a bad escape and a UART framing error (line held low) each draw a NAK with the right flag
  and increase the rejected count; the next good request is answered correctly.
* ``noisy_link_recovers``: a transport that damages every second request; the driver's
  retries still deliver exact results (coverage: retries happened), ``2 * LOWBIT_COUNT``.
* ``watchdog_and_reset``: a RUN asking for more results than it feeds ends with
  ``STATUS_TIMEOUT`` carrying the exact results it had; RESET and the next run are exact.
"""
from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Timer
from cocotbext.uart import UartSink, UartSource

from lowbit.fpga import host_protocol as hp
from lowbit.fpga.host import Device, check, packed_vectors
from lowbit.fpga.boards import StreamPort
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.drivers import reset_dut, seed_from_env

CLOCK_NS = 10


def _port(p: dict) -> StreamPort:
    return StreamPort(p["name"], p["width"], tuple(tuple(f) for f in p["fields"]))


class SimTransport:
    """Transport over the UART models; ``read`` waits up to ``timeout_bytes`` byte times."""

    def __init__(self, source: UartSource, sink: UartSink, bit_ns: int, timeout_bytes: int):
        self.source, self.sink = source, sink
        self.timeout_ns = bit_ns * 10 * timeout_bytes
        self.timeout_bytes = timeout_bytes
        self.wait_ns = self.timeout_ns
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))
        # the answer starts once the run is fed (a few cycles per byte, 80 per UART byte)
        self.wait_ns = self.timeout_ns + self.timeout_ns * len(data) // (8 * self.timeout_bytes)
        resume(self._write)(bytes(data))

    async def _write(self, data: bytes) -> None:
        await self.source.write(data)
        await self.source.wait()

    def read(self, timeout_s: float) -> bytes:
        return resume(self._read)()

    async def _read(self) -> bytes:
        await self.sink.wait(timeout=self.wait_ns, timeout_unit="ns")
        self.wait_ns = self.timeout_ns
        return bytes(self.sink.read_nowait())


class NoisyTransport(SimTransport):
    """Damages every second frame it sends: flips a bit, drops or duplicates a byte."""

    def __init__(self, *args, rng: random.Random):
        super().__init__(*args)
        self.rng, self.count, self.damaged = rng, 0, 0

    def write(self, data: bytes) -> None:
        self.count += 1
        if self.count % 2 == 0 and len(data) > 4:
            data = bytearray(data)
            k = self.rng.randrange(1, len(data) - 1)
            kind = self.rng.choice(["flip", "drop", "dup"])
            if kind == "flip":
                data[k] ^= 1 << self.rng.randrange(8)
            elif kind == "drop":
                del data[k]
            else:
                data.insert(k, data[k])
            self.damaged += 1
        super().write(bytes(data))


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.config = load_design(os.environ["LOWBIT_CONFIG"])
        self.params = json.loads(os.environ["LOWBIT_BOARD"])
        self.seed = seed_from_env()
        self.rng = random.Random(self.seed)
        self.in_ports = [_port(p) for p in self.params["in_ports"]]
        self.out_ports = [_port(p) for p in self.params["out_ports"]]
        self.count = int(os.environ.get("LOWBIT_COUNT", "300"))
        self.bit_ns = CLOCK_NS * self.params["divisor"]
        baud = 10**9 // self.bit_ns
        self.source = UartSource(dut.uart_rx, baud=baud)
        self.sink = UartSink(dut.uart_tx, baud=baud)
        for model in (self.source, self.sink):
            model.log.setLevel(logging.WARNING)   # one line per byte otherwise
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())

    def transport(self, cls=SimTransport, **kwargs):
        # write() returns once the request is on the wire; the answer starts after the run
        # (a few cycles per beat) or the 4,000-cycle watchdog (50 byte times)
        return cls(self.source, self.sink, self.bit_ns, 100, **kwargs)

    def device(self, transport=None, retries=3):
        return Device(transport or self.transport(), self.in_ports, self.out_ports,
                      timeout_s=0.0, retries=retries, log=self.dut._log.info)

    async def start(self):
        self.dut.uart_rx.value = 1
        await reset_dut(self.dut, self.dut.clk)
        await ClockCycles(self.dut.clk, 10)

    def flat_vectors(self, count, out_margin: int = 0):
        """Raw input beats per input stream and expected raw output beats per output stream
        of random vectors, as many whole ones as fit one run (``out_margin`` output bytes
        left free)."""
        device = self.device()
        max_in, max_out = (self.params["buffer_bytes"] - hp.CRC_BYTES,
                           self.params["out_buffer_bytes"] - out_margin)
        sections = [[] for _ in self.in_ports]
        expected = [[] for _ in self.out_ports]
        for ins, outs in packed_vectors(self.config, self.in_ports, self.out_ports, self.rng,
                                        count):
            size = device.sizes([a + b for a, b in zip(sections, ins)],
                                [len(a) + len(b) for a, b in zip(expected, outs)])
            if any(sections) and (size[0] > max_in or size[1] > max_out):
                break
            sections = [a + b for a, b in zip(sections, ins)]
            expected = [a + b for a, b in zip(expected, outs)]
        return sections, expected

    def payload(self, sections, expected):
        return hp.run_payload(sections, [p.width for p in self.in_ports],
                              [len(e) for e in expected], [p.width for p in self.out_ports])


@cocotb.test()
async def driver_end_to_end(dut):
    bench = Bench(dut)
    await bench.start()
    count = bench.count

    @bridge
    def host():
        device = bench.device()
        info = device.info()
        assert info.design_id == bench.params["design_id"], info
        assert list(info.in_widths) == [p.width for p in bench.in_ports], info
        assert list(info.out_widths) == [p.width for p in bench.out_ports], info
        assert info.rejected_frames == 0, info
        return check(device, bench.config, count=count, seed=bench.seed,
                     expect_id=bench.params["design_id"])

    result = await host()
    dut._log.info(result.summary())
    assert result.ok, result.summary()
    assert result.beats_out >= min(count, 1)


def _request(device: Device, cmd: int, payload: bytes, damage) -> list[hp.Frame]:
    """Send one frame damaged by ``damage`` and collect every frame that comes back."""
    device.seq = (device.seq + 1) & 0xFF
    device.transport.write(damage(hp.encode_frame(cmd, device.seq, payload)))
    frames = []
    while True:
        data = device.transport.read(0.0)
        if not data:
            return frames
        frames += device.decoder.feed(data)


@cocotb.test()
async def damaged_frames_rejected(dut):
    bench = Bench(dut)
    await bench.start()
    beats, expected = bench.flat_vectors(6)
    payload = bench.payload(beats, expected)
    sample = hp.encode_frame(hp.CMD_RUN, 0, payload)
    plain = [k for k in range(len(sample) // 2, len(sample) - 2)   # away from escapes
             if not {sample[k - 1], sample[k], sample[k + 1]} & {hp.END, hp.ESC}]
    middle = plain[0]
    damages = {
        "flipped bit": (lambda f: f[:middle] + bytes((f[middle] ^ 0x10,)) + f[middle + 1:],
                        hp.REJECT_CRC),
        "lost byte": (lambda f: f[:middle] + f[middle + 1:], hp.REJECT_LENGTH),
        "extra byte": (lambda f: f[:middle] + bytes((0x5A,)) + f[middle:], hp.REJECT_LENGTH),
        "bad escape": (lambda f: f[:middle] + bytes((hp.ESC, 0x00)) + f[middle:],
                       hp.REJECT_ESCAPE),
    }

    @bridge
    def host(kind):
        device = bench.device()
        if kind == "truncated":
            frame = hp.encode_frame(hp.CMD_RUN, 0x77, payload)
            device.transport.write(frame[:middle])     # no closing END: cut off
            got = []
        elif kind == "framing":
            got = None
        else:
            damage, flag = damages[kind]
            got = _request(device, hp.CMD_RUN, payload, damage)
            assert [f.cmd for f in got] == [hp.CMD_NAK], (kind, got)
            assert got[0].payload[0] & flag, (kind, got[0].payload)
        status, out = device.run(beats, [len(e) for e in expected])   # the unit has recovered
        assert status == hp.STATUS_OK and out == expected, (kind, status)
        assert not device.naks, (kind, device.naks)
        return device.info().rejected_frames, device.foreign_naks

    rejected = 0
    for kind in [*damages, "truncated"]:
        count, foreign = await host(kind)
        rejected += 1
        assert count == rejected, (kind, count, rejected)
        # a truncated frame is ended by the next frame's END; its NAK names seq 0x77, which
        # the driver sets aside while it waits for its own answer
        assert foreign == ([0x77] if kind == "truncated" else []), (kind, foreign)
    # a framing error: the line held low for a whole character inside a frame
    frame = hp.encode_frame(hp.CMD_INFO, 1)
    await bench.source.write(frame[:3])
    await bench.source.wait()
    dut.uart_rx.value = 0
    await Timer(bench.bit_ns * 12, "ns")
    dut.uart_rx.value = 1
    await Timer(bench.bit_ns * 4, "ns")
    await bench.source.write(frame[3:])
    await bench.source.wait()
    await Timer(bench.bit_ns * 200, "ns")
    answer = hp.FrameDecoder().feed(bytes(bench.sink.read_nowait()))
    assert [f.cmd for f in answer] == [hp.CMD_NAK] and answer[0].payload[0] & hp.REJECT_UART, \
        answer
    count, _ = await host("flipped bit")
    assert count == rejected + 2, count


@cocotb.test()
async def noisy_link_recovers(dut):
    bench = Bench(dut)
    await bench.start()

    @bridge
    def host():
        transport = bench.transport(NoisyTransport, rng=random.Random(bench.seed + 7))
        device = bench.device(transport, retries=6)
        result = check(device, bench.config, count=2 * bench.count, seed=bench.seed + 1)
        return result, transport.damaged

    result, damaged = await host()
    dut._log.info("%s; %d frames damaged on the way", result.summary(), damaged)
    assert result.ok, result.summary()
    assert damaged > 0 and result.retries >= damaged, (damaged, result.retries)


@cocotb.test()
async def watchdog_and_reset(dut):
    bench = Bench(dut)
    await bench.start()
    beats, expected = bench.flat_vectors(10, out_margin=3 * hp.beat_bytes(bench.out_ports[0].width))
    counts = [len(e) for e in expected]

    @bridge
    def host():
        device = bench.device()
        status, out = device.run(beats, [counts[0] + 3] + counts[1:])
        assert status == hp.STATUS_TIMEOUT, status
        assert out == expected, (out, expected)
        device.reset()
        status, out = device.run(beats, counts)
        assert status == hp.STATUS_OK
        assert out == expected
        too_many = bench.params["out_buffer_bytes"] // hp.beat_bytes(bench.out_ports[0].width) + 1
        status, _ = device.run(beats, [too_many] + counts[1:])         # too many results
        assert status == hp.STATUS_BAD_LENGTH, status

    await host()
