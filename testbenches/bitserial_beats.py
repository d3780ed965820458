"""Pack a bit-serial tile's beats (``golden_models.bitserial.beats``) into stream payloads.

Pure Python (no cocotb, no Amaranth): the same integers feed the cocotb bench under
Verilator and the quick Amaranth-simulator tests. The layouts are written out here a second
time, independently of the generator (element 0 / first field in the low bits, as Amaranth
flattens them), so a layout slip on either side makes the tests fail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.golden_models.bitserial import Tile, beats, clamp_precision, model, plan


def pack(values, width: int) -> int:
    """Flatten ``values`` (any nesting, row-major) into one integer, element 0 lowest."""
    raw = 0
    for n, v in enumerate(np.asarray(values, dtype=np.int64).ravel().tolist()):
        raw |= (int(v) & ((1 << width) - 1)) << (n * width)
    return raw


def unpack(raw: int, width: int, count: int, signed: bool = True) -> list[int]:
    out = []
    for n in range(count):
        v = (int(raw) >> (n * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if signed and v >> (width - 1) else v)
    return out


@dataclass
class PackedTile:
    """One tile as payload integers per port, and the expected ``y`` payload."""

    cmd: list[int]
    s: list[int]
    w: list[int]
    x: list[int]
    y: int
    expected: np.ndarray


def clamped_codes(cfg, field: str, precision: int) -> list[int]:
    """The other codes of the ``cmd`` field ``field`` (``wbits`` or ``abits``) that the unit
    reads as ``precision``: run-time precisions are clamped into ``1..max``
    (``golden_models.bitserial.clamp_precision``), so 0 means 1 and every code above the
    maximum that the field holds means the maximum."""
    maximum = cfg.wbits_max if field == "wbits" else cfg.abits
    def clamp(code):
        return (clamp_precision(cfg, code)[0] if field == "wbits"
                else clamp_precision(cfg, 1, code)[1])
    return [code for code in range(1 << maximum.bit_length())
            if code != precision and clamp(code) == precision]


def pack_tile(cfg, tile: Tile, wbits_code: int | None = None,
              abits_code: int | None = None) -> PackedTile:
    """``tile`` as beats; ``wbits_code`` / ``abits_code`` send another code of the same
    run-time precision in the ``cmd`` field (one of :func:`clamped_codes`)."""
    b = beats(cfg, tile)
    wf = cfg.wbits_max.bit_length()
    cmd = b["cmd"][0]
    wbits = cmd["wbits"] if wbits_code is None else wbits_code
    raw_cmd = (wbits & ((1 << wf) - 1)) | (cmd["wsigned"] << wf)
    if cfg.mode == "both_serial":
        abits = cmd["abits"] if abits_code is None else abits_code
        raw_cmd |= (abits & ((1 << cfg.abits.bit_length()) - 1)) << (wf + 1)
    s = []
    for beat in b["s"]:
        raw, offset = 0, 0
        if cfg.scale_bits:
            raw |= pack(beat["scale"], cfg.scale_bits)
            offset = cfg.scale_bits * cfg.rows
        if cfg.zero_point:
            raw |= pack(beat["zero"], cfg.wbits_max) << offset
        s.append(raw)
    wwidth = cfg.wbits_max if cfg.mode == "parallel" else 1
    awidth = 1 if cfg.mode == "both_serial" else cfg.abits
    data_bits = cfg.cols * cfg.lanes * awidth
    w = [pack(beat, wwidth) for beat in b["w"]]
    x = [pack(values, awidth) | (last << data_bits) for values, last in b["x"]]
    expected = model(cfg, tile)
    return PackedTile(cmd=[raw_cmd], s=s if (cfg.scale_bits or cfg.zero_point) else [],
                      w=w, x=x, y=pack(expected, plan(cfg).result_bits), expected=expected)


def describe_y(cfg, raw: int) -> str:
    """A ``y`` payload as its R x C matrix, for scoreboard reports."""
    values = unpack(raw, plan(cfg).result_bits, cfg.rows * cfg.cols)
    return str(np.array(values).reshape(cfg.rows, cfg.cols).tolist())
