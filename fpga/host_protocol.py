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
``INFO`` (no payload) -> :data:`INFO_FORMAT`: magic ``b"LB"``, protocol version, bytes per
input beat, bytes per output beat, buffer bytes, input/output payload widths, design id
(CRC-32 of the design's name and port metadata, so the host can tell it talks to the
bitstream it expects), the count of rejected frames, the clock in Hz.

``RESET`` (no payload) -> ``status``: resets the compute block (pipelines emptied) and
drops nothing else.

``RUN`` payload ``n_in:u16  n_out:u16  beats[n_in * in_bytes]`` -> ``status  n_got:u16
beats[n_got * out_bytes]``. The device feeds the ``n_in`` input beats to the block's input
stream and collects output beats until it has ``n_out`` of them; if neither stream moves for
the device's watchdog time it answers with what it has and ``STATUS_TIMEOUT``. A beat is the
stream's flat payload (struct fields packed first field in the low bits, as Amaranth does),
``ceil(width / 8)`` bytes little-endian. ``len != 4 + n_in * in_bytes`` or more output bytes
than the buffer holds gives ``STATUS_BAD_LENGTH`` without running.
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
PROTOCOL_VERSION = 1

CMD_INFO, CMD_RUN, CMD_RESET = 0x01, 0x02, 0x03
CMD_NAK = 0xFF
RESPONSE_FLAG = 0x80

STATUS_OK, STATUS_TIMEOUT, STATUS_BAD_LENGTH, STATUS_BAD_COMMAND = 0, 1, 2, 3
STATUS_NAMES = {STATUS_OK: "ok", STATUS_TIMEOUT: "timeout", STATUS_BAD_LENGTH: "bad length",
                STATUS_BAD_COMMAND: "bad command"}

REJECT_CRC, REJECT_LENGTH, REJECT_UART, REJECT_ESCAPE = 1, 2, 4, 8

#: INFO payload: magic, version, in_bytes, out_bytes, buffer, in_width, out_width, design id,
#: rejected frames, clock Hz.
INFO_FORMAT = "<2sBBBHHHIHI"
INFO_BYTES = struct.calcsize(INFO_FORMAT)


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
    in_bytes: int
    out_bytes: int
    buffer_bytes: int
    in_width: int
    out_width: int
    design_id: int
    rejected_frames: int
    clock_hz: int

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != INFO_BYTES:
            raise ProtocolError(f"INFO answer has {len(payload)} bytes, expected {INFO_BYTES}")
        magic, *fields = struct.unpack(INFO_FORMAT, payload)
        if magic != b"LB":
            raise ProtocolError(f"INFO answer has magic {magic!r}, expected b'LB'")
        return cls(*fields)

    def pack(self) -> bytes:
        return struct.pack(INFO_FORMAT, b"LB", self.version, self.in_bytes, self.out_bytes,
                           self.buffer_bytes, self.in_width, self.out_width, self.design_id,
                           self.rejected_frames, self.clock_hz)


def run_payload(in_beats: list[int], n_out: int, in_width: int) -> bytes:
    """``RUN`` payload for raw input beats (flat payload integers)."""
    size = beat_bytes(in_width)
    out = bytearray(struct.pack("<HH", len(in_beats), n_out))
    for beat in in_beats:
        if not 0 <= beat < (1 << in_width):
            raise ValueError(f"beat {beat:#x} does not fit {in_width} bits")
        out += int(beat).to_bytes(size, "little")
    return bytes(out)


def parse_run_answer(payload: bytes, out_width: int) -> tuple[int, list[int]]:
    """``(status, raw output beats)`` from a ``RUN`` answer."""
    if len(payload) == 1 and payload[0] != STATUS_OK:     # refused before running
        return payload[0], []
    if len(payload) < 3:
        raise ProtocolError(f"RUN answer of {len(payload)} bytes is too short")
    status, count = payload[0], struct.unpack_from("<H", payload, 1)[0]
    size = beat_bytes(out_width)
    data = payload[3:]
    if len(data) != count * size:
        raise ProtocolError(f"RUN answer says {count} beats but carries {len(data)} bytes")
    mask = (1 << out_width) - 1
    return status, [int.from_bytes(data[k * size:(k + 1) * size], "little") & mask
                    for k in range(count)]
