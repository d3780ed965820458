"""The framed host protocol spoken over the board UART (host side codec; constants for both).

One module states the format; the gateware (:mod:`fpga.bridge`) takes its constants from
here and the host driver (:mod:`fpga.host`) encodes and decodes with the functions below.

Frame
-----
Every frame, in both directions, is::

    END  escape( cmd  seq  len_lo  len_hi  payload[len]  crc_hi  crc_lo )  END

* SLIP byte stuffing (RFC 1055): ``END = 0xC0`` marks both ends of a frame; inside, ``0xC0``
  is sent as ``ESC ESC_END`` (``0xDB 0xDC``) and ``0xDB`` as ``ESC ESC_ESC`` (``0xDB 0xDD``).
  An ``END`` therefore only ever means "frame boundary": a lost or extra byte spoils one
  frame, and the receiver is back in step at the next ``END`` without any timeout. Empty
  frames (two ``END`` in a row) are ignored.
* ``len`` (16-bit little-endian) counts the payload bytes; a frame whose unescaped size is
  not ``len + 6`` is rejected.
* ``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
  final XOR) over ``cmd .. payload``, sent most significant byte first, so that the CRC run
  over the whole unescaped frame, CRC included, leaves 0 (what the gateware checks).
* A frame is also rejected when a UART framing/overrun error happened inside it, when an
  ``ESC`` is followed by anything but ``ESC_END``/``ESC_ESC``, or when it is longer than the
  device's buffer. The device answers a rejected frame with a ``NAK`` frame (``cmd = 0xFF``,
  ``seq`` = the second byte received, i.e. the rejected frame's sequence number unless that
  byte was the damaged one; payload = one byte of :data:`REJECT_*` flags) unless it is
  busy, and counts it (see ``INFO``). A frame that arrives while the device is busy is
  dropped unanswered and counted too.

Commands (host -> device) and responses (device -> host, ``cmd | 0x80``, same ``seq``)
--------------------------------------------------------------------------------------
``INFO`` (no payload) -> :data:`INFO_FORMAT`: magic ``b"LB"``, protocol version, the
number of input and of output streams, input and output buffer bytes, design id (CRC-32 of
the design's name and port metadata, so the host can tell it talks to the bitstream it
expects), the count of rejected frames, the clock in Hz; then the payload width (u16) of
each input stream and of each output stream, in the block's port order.

``RESET`` (no payload) -> ``status``: resets the compute block (pipelines emptied) and
drops nothing else.

``RUN`` payload ``in_len[S_in]:u16  out_len[S_out]:u16  section[0] .. section[S_in - 1]``
-> ``status  got[S_out]:u16  out_section[0] .. out_section[S_out - 1]``. Input stream ``k``
gets the beats of ``section[k]`` (``in_len[k]`` bytes: whole beats of ``ceil(width / 8)``
bytes, little-endian; a beat is the stream's flat payload, struct fields first field in the
low bits, as Amaranth packs them); output stream ``k`` has ``out_len[k]`` bytes reserved.
The device offers every input stream its beats at once (a stream the block does not take
yet never holds up another) while it collects beats of every output stream until each
reserved section is full; ``got[k]`` counts the beats of output stream ``k`` and every
``out_section[k]`` is sent whole (``out_len[k]`` bytes, its first ``got[k]`` beats valid).
If no stream moves for the device's watchdog time it answers with what it has and
``STATUS_TIMEOUT``. ``len != 2 * (S_in + S_out) + sum(in_len)``, or more reserved output
bytes than the output buffer holds, gives ``STATUS_BAD_LENGTH`` without running. The block
keeps its state between runs, so a host may split its streams over several runs as long as
each run's input can be taken with the outputs it reserves.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
HEADER_BYTES = 4
CRC_BYTES = 2
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021
PROTOCOL_VERSION = 2

CMD_INFO, CMD_RUN, CMD_RESET = 0x01, 0x02, 0x03
CMD_NAK = 0xFF
RESPONSE_FLAG = 0x80

STATUS_OK, STATUS_TIMEOUT, STATUS_BAD_LENGTH, STATUS_BAD_COMMAND = 0, 1, 2, 3
STATUS_NAMES = {STATUS_OK: "ok", STATUS_TIMEOUT: "timeout", STATUS_BAD_LENGTH: "bad length",
                STATUS_BAD_COMMAND: "bad command"}

REJECT_CRC, REJECT_LENGTH, REJECT_UART, REJECT_ESCAPE = 1, 2, 4, 8

#: INFO payload head: magic, version, input streams, output streams, input buffer bytes,
#: output buffer bytes, design id, rejected frames, clock Hz; the stream widths (u16) follow.
INFO_FORMAT = "<2sBBBHHIHI"
INFO_HEAD_BYTES = struct.calcsize(INFO_FORMAT)
#: where the rejected-frame count sits in the INFO payload
INFO_REJECTED_AT = INFO_HEAD_BYTES - 6


def info_bytes(n_in: int, n_out: int) -> int:
    """Size of the INFO payload of a device with ``n_in`` + ``n_out`` streams."""
    return INFO_HEAD_BYTES + 2 * (n_in + n_out)


def run_arg_bytes(n_in: int, n_out: int) -> int:
    """Bytes of a RUN frame's section lengths (before the sections)."""
    return 2 * (n_in + n_out)


class ProtocolError(RuntimeError):
    """A response could not be obtained or made no sense (after the retries)."""


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def design_id(name: str, metadata_json: str) -> int:
    """The 32-bit id a bitstream reports in ``INFO``: CRC-32 of name and port metadata."""
    return zlib.crc32(f"{name}\n{metadata_json}".encode())


def beat_bytes(width: int) -> int:
    """Bytes one stream beat of ``width`` payload bits occupies on the wire."""
    return (int(width) + 7) // 8


def escape(body: bytes) -> bytes:
    out = bytearray()
    for byte in body:
        if byte == END:
            out += bytes((ESC, ESC_END))
        elif byte == ESC:
            out += bytes((ESC, ESC_ESC))
        else:
            out.append(byte)
    return bytes(out)


def encode_frame(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes on the wire for one frame (see the module docstring)."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 16-bit length field")
    body = bytes((cmd & 0xFF, seq & 0xFF)) + struct.pack("<H", len(payload)) + bytes(payload)
    crc = crc16(body)
    return bytes((END,)) + escape(body + bytes((crc >> 8, crc & 0xFF))) + bytes((END,))


@dataclass(frozen=True)
class Frame:
    """One frame as received: ``ok`` false means it failed a check (``reason`` says which)."""

    ok: bool
    cmd: int = 0
    seq: int = 0
    payload: bytes = b""
    reason: str = ""


def parse_body(raw: bytes) -> Frame:
    """Check one unescaped frame body (between two ``END``)."""
    if len(raw) < HEADER_BYTES + CRC_BYTES:
        return Frame(False, reason=f"short frame ({len(raw)} bytes)")
    cmd, seq, length = raw[0], raw[1], struct.unpack_from("<H", raw, 2)[0]
    if len(raw) != HEADER_BYTES + length + CRC_BYTES:
        return Frame(False, cmd, seq, reason=f"length field {length} but {len(raw) - 6} "
                                              f"payload bytes")
    if crc16(raw) != 0:
        return Frame(False, cmd, seq, reason="CRC mismatch")
    return Frame(True, cmd, seq, bytes(raw[HEADER_BYTES:-CRC_BYTES]))


class FrameDecoder:
    """Incremental SLIP decoder: :meth:`feed` bytes, get the complete frames seen so far."""

    def __init__(self):
        self._body = bytearray()
        self._escaped = False
        self._bad_escape = False

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        for byte in data:
            if byte == END:
                if self._body or self._bad_escape:
                    frame = parse_body(bytes(self._body))
                    if self._bad_escape:
                        frame = Frame(False, reason="bad escape sequence")
                    frames.append(frame)
                self._body.clear()
                self._escaped = self._bad_escape = False
            elif self._escaped:
                self._escaped = False
                if byte in (ESC_END, ESC_ESC):
                    self._body.append(END if byte == ESC_END else ESC)
                else:
                    self._bad_escape = True
            elif byte == ESC:
                self._escaped = True
            else:
                self._body.append(byte)
        return frames


@dataclass(frozen=True)
class Info:
    """The device's ``INFO`` answer."""

    version: int
    buffer_bytes: int           # input buffer (a RUN's sections and CRC)
    out_buffer_bytes: int
    in_widths: tuple[int, ...]
    out_widths: tuple[int, ...]
    design_id: int
    rejected_frames: int
    clock_hz: int

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) < INFO_HEAD_BYTES:
            raise ProtocolError(f"INFO answer has {len(payload)} bytes, expected at least "
                                f"{INFO_HEAD_BYTES}")
        magic, version, n_in, n_out, inbuf, outbuf, ident, rejected, clock = \
            struct.unpack_from(INFO_FORMAT, payload)
        if magic != b"LB":
            raise ProtocolError(f"INFO answer has magic {magic!r}, expected b'LB'")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"the device speaks protocol {version}, this host "
                                f"{PROTOCOL_VERSION}: rebuild the bitstream")
        if len(payload) != info_bytes(n_in, n_out):
            raise ProtocolError(f"INFO answer has {len(payload)} bytes for {n_in} + {n_out} "
                                f"streams, expected {info_bytes(n_in, n_out)}")
        widths = struct.unpack_from(f"<{n_in + n_out}H", payload, INFO_HEAD_BYTES)
        return cls(version, inbuf, outbuf, widths[:n_in], widths[n_in:], ident, rejected, clock)

    def pack(self) -> bytes:
        widths = (*self.in_widths, *self.out_widths)
        return struct.pack(INFO_FORMAT, b"LB", self.version, len(self.in_widths),
                           len(self.out_widths), self.buffer_bytes, self.out_buffer_bytes,
                           self.design_id, self.rejected_frames, self.clock_hz) + \
            struct.pack(f"<{len(widths)}H", *widths)


def run_payload(sections: list[list[int]], in_widths: list[int], out_counts: list[int],
                out_widths: list[int]) -> bytes:
    """``RUN`` payload: raw beats (flat payload integers) per input stream, and the number
    of beats to collect per output stream."""
    body = bytearray()
    lens = []
    for beats, width in zip(sections, in_widths, strict=True):
        size = beat_bytes(width)
        for beat in beats:
            if not 0 <= beat < (1 << width):
                raise ValueError(f"beat {beat:#x} does not fit {width} bits")
            body += int(beat).to_bytes(size, "little")
        lens.append(len(beats) * size)
    lens += [n * beat_bytes(w) for n, w in zip(out_counts, out_widths, strict=True)]
    if max(lens, default=0) > 0xFFFF:
        raise ValueError(f"a section of {max(lens)} bytes exceeds the 16-bit length field")
    return struct.pack(f"<{len(lens)}H", *lens) + bytes(body)


def parse_run_answer(payload: bytes, out_counts: list[int],
                     out_widths: list[int]) -> tuple[int, list[list[int]]]:
    """``(status, raw output beats per output stream)`` from a ``RUN`` answer."""
    if len(payload) == 1 and payload[0] != STATUS_OK:     # refused before running
        return payload[0], [[] for _ in out_widths]
    n = len(out_widths)
    sizes = [beat_bytes(w) for w in out_widths]
    expect = 1 + 2 * n + sum(c * b for c, b in zip(out_counts, sizes))
    if len(payload) != expect:
        raise ProtocolError(f"RUN answer of {len(payload)} bytes, expected {expect}")
    status, got = payload[0], struct.unpack_from(f"<{n}H", payload, 1)
    out, at = [], 1 + 2 * n
    for count, size, width, have in zip(out_counts, sizes, out_widths, got):
        if have > count:
            raise ProtocolError(f"RUN answer says {have} beats of a stream that reserved "
                                f"{count}")
        mask = (1 << width) - 1
        out.append([int.from_bytes(payload[at + k * size:at + (k + 1) * size], "little") & mask
                    for k in range(have)])
        at += count * size
    return status, out
