"""Host driver: send NumPy operands to a board over the framed UART protocol, check results.

Contract
--------
* A *transport* has ``write(data: bytes)`` and ``read(timeout_s: float) -> bytes`` (what
  arrived within the timeout, ``b""`` if nothing). :class:`SerialTransport` wraps pyserial;
  the cocotb board bench supplies one that drives a UART model in simulation, so the very
  same :class:`Device` code runs against the simulated and the real board.
* :class:`Device` frames requests (:mod:`fpga.host_protocol`), matches answers by sequence
  number and retries a request (``retries`` times) after a ``NAK`` or when no answer came
  within ``timeout_s``; :meth:`Device.info`, :meth:`Device.reset`, :meth:`Device.run`
  (raw beats in, raw beats out) and :meth:`Device.stream` (whole vectors, split into runs
  that fit the device buffer) are the API.
* :func:`describe` gives the stream ports and design id of a design point; a family's
  ``host_vectors(rng, count)`` (its config class; ``None`` without a host adapter) gives
  random stimulus from the golden model's input space and the golden model's expected
  output; :func:`check` runs both through a :class:`Device` and reports every mismatch
  (index, input, expected, actual).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from amaranth.hdl import Fragment

from . import host_protocol as hp
from .boards import StreamPort, block_design_id, stream_ports

__all__ = ["CheckResult", "Device", "SerialTransport", "Transport", "check",
           "describe", "host_vectors", "pack", "run_on_port", "unpack"]


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read(self, timeout_s: float) -> bytes: ...


class SerialTransport:
    """A serial port (pyserial) as a transport; ``url`` may be a device or a pyserial URL."""

    def __init__(self, url: str, baud: int = 115200):
        import serial

        self.port = serial.serial_for_url(url, baudrate=baud, timeout=0)

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while True:
            data = self.port.read(4096)
            if data or time.monotonic() >= deadline:
                return data
            time.sleep(0.001)

    def close(self) -> None:
        self.port.close()


def pack(port: StreamPort, values: dict) -> int:
    """Flat payload of one beat from its field values (first field in the low bits)."""
    raw, offset = 0, 0
    for name, width, signed in port.fields:
        value = int(values[name])
        lo, hi = (-(1 << width - 1), (1 << width - 1) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"{port.name}.{name} = {value} does not fit {width} bits")
        raw |= (value & ((1 << width) - 1)) << offset
        offset += width
    return raw


def unpack(port: StreamPort, raw: int) -> dict:
    out, offset = {}, 0
    for name, width, signed in port.fields:
        value = (raw >> offset) & ((1 << width) - 1)
        out[name] = value - (1 << width) if signed and value >> (width - 1) else value
        offset += width
    return out


class Device:
    """One board running a lowbit bitstream, behind ``transport`` (module docstring)."""

    def __init__(self, transport: Transport, in_port: StreamPort, out_port: StreamPort, *,
                 timeout_s: float = 2.0, retries: int = 3, log: Callable[[str], None] = None):
        self.transport, self.in_port, self.out_port = transport, in_port, out_port
        self.timeout_s, self.retries = timeout_s, retries
        self.log = log or (lambda _msg: None)
        self.decoder = hp.FrameDecoder()
        self.seq = 0
        self.retried = 0
        self.naks: list[int] = []          # rejections of our own frames (flags)
        self.foreign_naks: list[int] = []  # rejections naming another sequence number
        self._info: hp.Info | None = None

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one command and return its answer's payload (after retries)."""
        self.seq = (self.seq + 1) & 0xFF
        frame = hp.encode_frame(cmd, self.seq, payload)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                self.log(f"retry {attempt} of cmd {cmd:#x} seq {self.seq}: {problem}")
            self.transport.write(frame)
            answer, problem = self._await_answer(cmd)
            if answer is not None:
                return answer
        raise hp.ProtocolError(f"no valid answer to command {cmd:#x} after "
                               f"{self.retries + 1} attempts: {problem}")

    def _await_answer(self, cmd: int) -> tuple[bytes | None, str]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            data = self.transport.read(max(left, 0.0))
            for frame in self.decoder.feed(data):
                if not frame.ok:
                    self.log(f"dropped a damaged answer ({frame.reason})")
                elif frame.cmd == hp.CMD_NAK and frame.seq == self.seq:
                    self.naks.append(frame.payload[0] if frame.payload else 0)
                    return None, f"device rejected the frame (flags {self.naks[-1]:#x})"
                elif frame.cmd == hp.CMD_NAK:   # some other (damaged) frame's rejection
                    self.foreign_naks.append(frame.seq)
                    self.log(f"NAK for seq {frame.seq} (flags {frame.payload.hex()}) ignored")
                elif frame.cmd == cmd | hp.RESPONSE_FLAG and frame.seq == self.seq:
                    return frame.payload, ""
            if not data and time.monotonic() >= deadline:
                return None, f"no answer within {self.timeout_s} s"

    def info(self) -> hp.Info:
        self._info = hp.Info.unpack(self.request(hp.CMD_INFO))
        return self._info

    def reset(self) -> None:
        status = self.request(hp.CMD_RESET)
        if status != bytes((hp.STATUS_OK,)):
            raise hp.ProtocolError(f"RESET answered {status!r}")

    def run(self, in_beats: list[int], n_out: int) -> tuple[int, list[int]]:
        """Raw beats in, ``(status, raw beats out)``; the run must fit the device buffer."""
        payload = hp.run_payload(in_beats, n_out, self.in_port.width)
        status, beats = hp.parse_run_answer(self.request(hp.CMD_RUN, payload),
                                            self.out_port.width)
        return status, beats

    def limits(self) -> tuple[int, int]:
        """``(max input beats, max output beats)`` of one run."""
        info = self._info or self.info()
        return ((info.buffer_bytes - hp.CRC_BYTES) // info.in_bytes,
                info.buffer_bytes // info.out_bytes)

    def stream(self, vectors: list[tuple[list[int], int]]) -> list[int]:
        """Run whole vectors (raw input beats, expected output count), as few runs as fit."""
        max_in, max_out = self.limits()
        outputs: list[int] = []
        batch: list[int] = []
        n_out = 0
        for beats, count in vectors:
            if len(beats) > max_in or count > max_out:
                raise ValueError(f"a vector of {len(beats)} beats ({count} results) exceeds "
                                 f"the device buffer ({max_in} / {max_out})")
            if batch and (len(batch) + len(beats) > max_in or n_out + count > max_out):
                outputs += self._run_ok(batch, n_out)
                batch, n_out = [], 0
            batch += beats
            n_out += count
        if batch:
            outputs += self._run_ok(batch, n_out)
        return outputs

    def _run_ok(self, beats: list[int], n_out: int) -> list[int]:
        status, got = self.run(beats, n_out)
        if status != hp.STATUS_OK:
            self.reset()
            raise hp.ProtocolError(f"RUN ended with status {hp.STATUS_NAMES.get(status, status)}"
                                   f" after {len(got)} of {n_out} results")
        return got


# ------------------------------------------------------------------------------ golden model


def describe(config) -> tuple[StreamPort, StreamPort, int]:
    """``(input port, output port, design id)`` of a design point, from the signature of
    its block (built and elaborated, so it is not left as an unused elaboratable)."""
    from lowbit.rtl_gen.generate import build_component

    component = build_component(config)
    Fragment.get(component, None)
    return (*stream_ports(component), block_design_id(config.name, component))


def host_vectors(config) -> Callable:
    """``config``'s host adapter: ``f(rng, count) -> [(input beats, expected output beats)]``
    (beats as field dicts); raises ValueError for a family without one."""
    if config.host_vectors is None:
        from lowbit.rtl_gen.families import FAMILIES

        have = sorted(name for name, cls in FAMILIES.items() if cls.host_vectors is not None)
        raise ValueError(f"no host adapter for family {config.family!r} yet (have: "
                         f"{', '.join(have)})")
    return config.host_vectors


@dataclass
class CheckResult:
    design: str
    beats_in: int
    beats_out: int
    mismatches: list = field(default_factory=list)
    seconds: float = 0.0
    retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        head = (f"{self.design}: {self.beats_in} beats in, {self.beats_out} results, "
                f"{len(self.mismatches)} mismatches, {self.retries} retries, "
                f"{self.seconds:.2f} s")
        return head + "".join(f"\n  result {i}: input {x}, expected {e}, got {g}"
                              for i, x, e, g in self.mismatches[:10])


def check(device: Device, config, *, count: int = 256, seed: int = 1,
          expect_id: int | None = None) -> CheckResult:
    """Random vectors (plus corners) from the family's adapter through ``device`` vs golden."""
    host_vectors(config)   # a family without an adapter fails before the board is asked
    start = time.monotonic()
    info = device.info()
    if expect_id is not None and info.design_id != expect_id:
        raise hp.ProtocolError(f"the board reports design id {info.design_id:#010x}, but "
                               f"{config.name} is {expect_id:#010x}: wrong bitstream?")
    if (info.in_width, info.out_width) != (device.in_port.width, device.out_port.width):
        raise hp.ProtocolError(f"the board's streams are {info.in_width}/{info.out_width} "
                               f"bits, the design's {device.in_port.width}/"
                               f"{device.out_port.width}")
    device.reset()
    vectors = host_vectors(config)(random.Random(seed), count)
    raw = [([pack(device.in_port, b) for b in ins], len(outs)) for ins, outs in vectors]
    got = device.stream(raw)
    inputs = [b for ins, _ in vectors for b in ins]
    expected = [b for _, outs in vectors for b in outs]
    result = CheckResult(config.name, len(inputs), len(got), retries=device.retried)
    if len(got) != len(expected):
        result.mismatches.append((len(got), "-", f"{len(expected)} results", f"{len(got)}"))
    for k, (e, g) in enumerate(zip(expected, got)):
        actual = unpack(device.out_port, g)
        if actual != e:
            result.mismatches.append((k, inputs[k] if len(inputs) == len(expected) else "?",
                                      e, actual))
    result.seconds = time.monotonic() - start
    return result


def run_on_port(config, port: str, *, baud: int = 115200, count: int = 256, seed: int = 1,
                timeout_s: float = 2.0, log=print) -> CheckResult:
    """:func:`check` ``config`` on the board at serial ``port`` (the bitstream of
    ``lowbit synth --board``); raises :class:`host_protocol.ProtocolError` on a wrong
    bitstream or a dead link."""
    in_port, out_port, design = describe(config)
    transport = SerialTransport(port, baud)
    try:
        device = Device(transport, in_port, out_port, timeout_s=timeout_s, log=log)
        return check(device, config, count=count, seed=seed, expect_id=design)
    finally:
        transport.close()
