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
  (raw beats per input stream in, raw beats per output stream out) and
  :meth:`Device.stream` (whole vectors, as many per run as fit the device buffers) are
  the API.
* :func:`describe` gives the stream ports and design id of a design point; a family's
  ``host_vectors(rng, count)`` (its config class; ``None`` without a host adapter) gives
  random stimulus from the golden model's input space and the golden model's expected
  output, per vector and stream; :func:`check` runs both through a :class:`Device` and
  reports every mismatch (stream, index, expected, actual, unpacked into fields).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from amaranth.hdl import Fragment

from . import host_protocol as hp
from .boards import StreamPort, block_design_id, stream_ports

__all__ = ["CheckResult", "Device", "SerialTransport", "Transport", "check", "check_fits",
           "describe",
           "host_vectors", "largest_vector", "pack", "packed_vectors", "run_on_port",
           "unpack"]


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


def pack(port: StreamPort, values) -> int:
    """Flat payload of one beat: a raw payload integer (range-checked) or a dict of its leaf
    field values (first field in the low bits)."""
    if not isinstance(values, dict):
        raw = int(values)
        if not 0 <= raw < (1 << port.width):
            raise ValueError(f"{port.name} beat {raw:#x} does not fit {port.width} bits")
        return raw
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


def _by_port(ports: list[StreamPort], beats, what: str) -> list[list]:
    """A vector's beats per port, in port order: a list (the block's only port) or a dict
    naming every port."""
    if not isinstance(beats, dict):
        if len(ports) != 1:
            raise ValueError(f"the adapter gave one {what} list for {len(ports)} streams")
        return [list(beats)]
    unknown = sorted(set(beats) - {p.name for p in ports})
    if unknown:
        raise ValueError(f"the adapter names {what} streams {unknown} the block does not have")
    return [list(beats.get(p.name, [])) for p in ports]


class Device:
    """One board running a lowbit bitstream, behind ``transport`` (module docstring)."""

    def __init__(self, transport: Transport, in_ports, out_ports, *,
                 timeout_s: float = 2.0, retries: int = 3, log: Callable[[str], None] = None):
        self.transport = transport
        self.in_ports = [in_ports] if isinstance(in_ports, StreamPort) else list(in_ports)
        self.out_ports = [out_ports] if isinstance(out_ports, StreamPort) else list(out_ports)
        self.timeout_s, self.retries = timeout_s, retries
        self.log = log or (lambda _msg: None)
        self.decoder = hp.FrameDecoder()
        self.seq = 0
        self.retried = 0
        self.runs = 0
        self.naks: list[int] = []          # rejections of our own frames (flags)
        self.foreign_naks: list[int] = []  # rejections naming another sequence number
        self._info: hp.Info | None = None

    @property
    def in_widths(self) -> list[int]:
        return [p.width for p in self.in_ports]

    @property
    def out_widths(self) -> list[int]:
        return [p.width for p in self.out_ports]

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

    def run(self, sections, out_counts) -> tuple[int, list]:
        """Raw beats per input stream in, ``(status, raw beats per output stream)`` out; the
        run must fit the device buffers. A block with one input and one output stream may
        take a plain beat list and count (and gives a plain list back)."""
        single = not isinstance(out_counts, (list, tuple))
        if single:
            sections, out_counts = [sections], [out_counts]
        payload = hp.run_payload(sections, self.in_widths, out_counts, self.out_widths)
        self.runs += 1
        status, beats = hp.parse_run_answer(self.request(hp.CMD_RUN, payload), out_counts,
                                            self.out_widths)
        return (status, beats[0]) if single else (status, beats)

    def limits(self) -> tuple[int, int]:
        """``(input section bytes, output section bytes)`` one run can carry."""
        info = self._info or self.info()
        return info.buffer_bytes - hp.CRC_BYTES, info.out_buffer_bytes

    def sizes(self, sections, out_counts) -> tuple[int, int]:
        """Bytes a vector takes of the device's input and output buffers."""
        return (sum(len(b) * hp.beat_bytes(w) for b, w in zip(sections, self.in_widths)),
                sum(n * hp.beat_bytes(w) for n, w in zip(out_counts, self.out_widths)))

    def stream(self, vectors) -> list[list[int]]:
        """Run whole vectors (raw input beats per stream, output beats expected per stream)
        in as few runs as fit; the output beats per stream, concatenated."""
        max_in, max_out = self.limits()
        outputs: list[list[int]] = [[] for _ in self.out_ports]
        batch = [[] for _ in self.in_ports]
        counts = [0] * len(self.out_ports)
        used = (0, 0)
        for sections, out_counts in vectors:
            size = self.sizes(sections, out_counts)
            if size[0] > max_in or size[1] > max_out:
                raise ValueError(f"a vector of {size[0]} input bytes ({size[1]} output bytes) "
                                 f"exceeds the device buffers ({max_in} / {max_out})")
            if used != (0, 0) and (used[0] + size[0] > max_in or used[1] + size[1] > max_out):
                for got, more in zip(outputs, self._run_ok(batch, counts)):
                    got += more
                batch, counts, used = [[] for _ in self.in_ports], [0] * len(counts), (0, 0)
            for b, more in zip(batch, sections):
                b += more
            counts = [c + n for c, n in zip(counts, out_counts)]
            used = (used[0] + size[0], used[1] + size[1])
        if used != (0, 0):
            for got, more in zip(outputs, self._run_ok(batch, counts)):
                got += more
        return outputs

    def _run_ok(self, sections, counts) -> list[list[int]]:
        status, got = self.run(sections, counts)
        if status != hp.STATUS_OK:
            self.reset()
            raise hp.ProtocolError(f"RUN ended with status {hp.STATUS_NAMES.get(status, status)}"
                                   f" after {[len(g) for g in got]} of {counts} results")
        return got


# ------------------------------------------------------------------------------ golden model


def describe(config) -> tuple[list[StreamPort], list[StreamPort], int]:
    """``(input ports, output ports, design id)`` of a design point, from the signature of
    its block (built and elaborated, so it is not left as an unused elaboratable)."""
    from lowbit.rtl_gen.generate import build_component

    component = build_component(config)
    Fragment.get(component, None)
    return (*stream_ports(component), block_design_id(config.name, component))


def host_vectors(config) -> Callable:
    """``config``'s host adapter: ``f(rng, count) -> [(inputs, expected outputs)]`` (per
    vector: beats per stream, a dict by stream name or a list for a block's only stream;
    beats raw payload integers or leaf-field dicts); raises ValueError for a family without
    one."""
    if getattr(config, "host_vectors", None) is None:
        from lowbit.rtl_gen.families import FAMILIES

        have = sorted(name for name, cls in FAMILIES.items()
                      if getattr(cls, "host_vectors", None) is not None)
        raise ValueError(f"no host adapter for family {config.family!r} yet (have: "
                         f"{', '.join(have)})")
    return config.host_vectors


def packed_vectors(config, in_ports, out_ports, rng, count: int) -> list:
    """The adapter's vectors as ``[(raw beats per input port, raw expected beats per output
    port)]`` in port order."""
    vectors = []
    for ins, outs in host_vectors(config)(rng, count):
        sections = [[pack(p, b) for b in beats]
                    for p, beats in zip(in_ports, _by_port(in_ports, ins, "input"))]
        expected = [[pack(p, b) for b in beats]
                    for p, beats in zip(out_ports, _by_port(out_ports, outs, "output"))]
        vectors.append((sections, expected))
    return vectors


def largest_vector(config, in_ports, out_ports, *, count: int, seed: int) -> tuple[int, int]:
    """Input and output bytes of the biggest vector ``check`` would send (same seed)."""
    sizes = [(0, 0)]
    for sections, expected in packed_vectors(config, in_ports, out_ports,
                                             random.Random(seed), count):
        sizes.append((sum(len(b) * hp.beat_bytes(p.width) for b, p in zip(sections, in_ports)),
                      sum(len(b) * hp.beat_bytes(p.width) for b, p in zip(expected, out_ports))))
    return max(s[0] for s in sizes), max(s[1] for s in sizes)


def check_fits(config, board, *, count: int = 256) -> None:
    """``ValueError`` (one line) when ``config`` cannot run on ``board`` (a
    :class:`~fpga.boards.Board`): no host adapter, a port that is not a stream, or a vector
    larger than the board's host-link buffers. The adapters always include their largest
    vector, so seed 1 decides for every seed."""
    host_vectors(config)
    in_ports, out_ports, _ = describe(config)
    need_in, need_out = largest_vector(config, in_ports, out_ports, count=count, seed=1)
    have_in, have_out = board.buffer_bytes - hp.CRC_BYTES, board.out_buffer_bytes
    if need_in > have_in or need_out > have_out:
        raise ValueError(f"{config.name}'s largest vector takes {need_in} input / {need_out} "
                         f"output bytes of the host link; the {board.name} board top has "
                         f"{have_in} / {have_out}")


@dataclass
class CheckResult:
    design: str
    beats_in: int
    beats_out: int
    mismatches: list = field(default_factory=list)
    seconds: float = 0.0
    retries: int = 0
    runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        head = (f"{self.design}: {self.beats_in} beats in, {self.beats_out} results, "
                f"{len(self.mismatches)} mismatches, {self.retries} retries, {self.runs} runs, "
                f"{self.seconds:.2f} s")
        return head + "".join(f"\n  {port} result {i}: expected {e}, got {g}"
                              for port, i, e, g in self.mismatches[:10])


def check(device: Device, config, *, count: int = 256, seed: int = 1,
          expect_id: int | None = None) -> CheckResult:
    """Random vectors (plus corners) from the family's adapter through ``device`` vs golden."""
    host_vectors(config)   # a family without an adapter fails before the board is asked
    start = time.monotonic()
    info = device.info()
    if expect_id is not None and info.design_id != expect_id:
        raise hp.ProtocolError(f"the board reports design id {info.design_id:#010x}, but "
                               f"{config.name} is {expect_id:#010x}: wrong bitstream?")
    if (list(info.in_widths), list(info.out_widths)) != (device.in_widths, device.out_widths):
        raise hp.ProtocolError(f"the board's streams are {list(info.in_widths)} -> "
                               f"{list(info.out_widths)} bits, the design's "
                               f"{device.in_widths} -> {device.out_widths}")
    device.reset()
    vectors = packed_vectors(config, device.in_ports, device.out_ports, random.Random(seed),
                             count)
    runs = device.runs
    got = device.stream([(ins, [len(e) for e in outs]) for ins, outs in vectors])
    expected = [[b for _, outs in vectors for b in outs[k]] for k in range(len(got))]
    result = CheckResult(config.name, sum(len(b) for ins, _ in vectors for b in ins),
                         sum(map(len, got)), retries=device.retried, runs=device.runs - runs)
    for port, exp, have in zip(device.out_ports, expected, got):
        if len(have) != len(exp):
            result.mismatches.append((port.name, len(have), f"{len(exp)} results",
                                      f"{len(have)}"))
        for k, (e, g) in enumerate(zip(exp, have)):
            if e != g:
                result.mismatches.append((port.name, k, unpack(port, e), unpack(port, g)))
    result.seconds = time.monotonic() - start
    return result


def run_on_port(config, port: str, *, baud: int = 115200, count: int = 256, seed: int = 1,
                timeout_s: float = 2.0, log=print) -> CheckResult:
    """:func:`check` ``config`` on the board at serial ``port`` (the bitstream of
    ``lowbit synth --board``); raises :class:`host_protocol.ProtocolError` on a wrong
    bitstream or a dead link."""
    in_ports, out_ports, design = describe(config)
    transport = SerialTransport(port, baud)
    try:
        device = Device(transport, in_ports, out_ports, timeout_s=timeout_s, log=log)
        return check(device, config, count=count, seed=seed, expect_id=design)
    finally:
        transport.close()
