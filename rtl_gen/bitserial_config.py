"""Design-point parameters of the bit-serial mixed-precision MAC array (``family: bitserial``)."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models.bitserial import MAX_RESULT_BITS, MODES, plan

from .config import DesignConfig, register

_PARAMS = ("mode", "rows", "cols", "lanes", "group_size", "k_max", "wbits_max", "abits",
           "asigned", "scale_bits", "zero_point")


@register
@dataclass(frozen=True)
class BitserialConfig(DesignConfig):
    """``params`` of ``family: bitserial``.

    mode: weight_serial (weights one bit-plane per cycle, activations bit-parallel) |
    both_serial (both bit-serial, AND + popcount) | parallel (bit-parallel multiplier baseline).
    rows (R) x cols (C): processing elements, one per output row and activation column.
    lanes (L): products each PE reduces per cycle.   group_size (G): weights per scale group
    along K, a multiple of lanes.   k_max: the longest K a tile may have (sizes the totals).
    wbits_max: the widest run-time weight precision (1..8).   abits: activation width (the
    widest run-time activation precision in both_serial).   asigned: activations signed.
    scale_bits: width of the unsigned per-group scale (0: no scales).   zero_point: weights
    carry a per-group zero point.
    """

    family = "bitserial"
    mode: str = "weight_serial"
    rows: int = 8
    cols: int = 1
    lanes: int = 8
    group_size: int = 64
    k_max: int = 4096
    wbits_max: int = 8
    abits: int = 8
    asigned: bool = True
    scale_bits: int = 8
    zero_point: bool = False

    @classmethod
    def from_params(cls, fields, **common):
        def boolean(key, default):
            value = fields.get(key, default)
            if not isinstance(value, bool):
                raise fields.error(key, f"{value!r} is not allowed; expected true or false")
            return value

        mode = fields.choice("mode", MODES, "weight_serial")
        rows = fields.integer("rows", 1, 64, 8)
        cols = fields.integer("cols", 1, 16, 1)
        lanes = fields.integer("lanes", 1, 256, 8)
        group_size = fields.integer("group_size", 1, 4096, 64)
        k_max = fields.integer("k_max", 1, 1 << 24, 4096)
        wbits_max = fields.integer("wbits_max", 1, 8, 8)
        abits = fields.integer("abits", 1 if mode == "both_serial" else 2, 16, 8)
        asigned = boolean("asigned", True)
        scale_bits = fields.integer("scale_bits", 0, 16, 8)
        zero_point = boolean("zero_point", False)
        fields.reject_unknown(_PARAMS)
        if group_size % lanes:
            raise fields.error("group_size", f"{group_size} is not a multiple of lanes ({lanes})")
        if k_max % group_size:
            raise fields.error("k_max", f"{k_max} is not a multiple of group_size ({group_size})")
        config = cls(mode=mode, rows=rows, cols=cols, lanes=lanes, group_size=group_size,
                     k_max=k_max, wbits_max=wbits_max, abits=abits, asigned=asigned,
                     scale_bits=scale_bits, zero_point=zero_point, **common)
        bits = plan(config).result_bits
        if bits > MAX_RESULT_BITS:
            raise fields.error("k_max", f"results would need {bits} bits (at most "
                                        f"{MAX_RESULT_BITS}); lower k_max, scale_bits or the widths")
        return config
