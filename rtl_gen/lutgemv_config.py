"""Design-point parameters of the LUT-based GEMV unit (``family: lutgemv``)."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models import lutgemv as golden

from .config import DesignConfig, register


def read_gemv_common(fields, group_lo: int, group_hi: int, group_default: int) -> dict:
    """Parameters both GEMV families share: group, rows, act_bits, k_max, scale_bits (0: no
    per-row output scales; else the unsigned width of the ``scale`` stream's values), batch
    (activation vectors sharing each weight beat), exp_bits (0: none; else the width of a
    per-group left shift of the activations, the block-exponent offset in a window)."""
    group = fields.integer("group", group_lo, group_hi, group_default)
    rows = fields.integer("rows", 1, 64, 8)
    act_bits = fields.integer("act_bits", 2, 8, 8)
    k_max = fields.integer("k_max", 1, 16384, 256)
    scale_bits = fields.integer("scale_bits", 0, 16, 0)
    batch = fields.integer("batch", 1, 8, 1)
    exp_bits = fields.integer("exp_bits", 0, 3, 0)
    if k_max % group:
        raise fields.error("k_max", f"{k_max} is not a multiple of group {group}; "
                                    f"pad the vectors and use e.g. {k_max + group - k_max % group}")
    return dict(group=group, rows=rows, act_bits=act_bits, k_max=k_max, scale_bits=scale_bits,
                batch=batch, exp_bits=exp_bits)


#: the parameter names ``read_gemv_common`` reads
COMMON_PARAMS = ("group", "rows", "act_bits", "k_max", "scale_bits", "batch", "exp_bits")


@register
@dataclass(frozen=True)
class LutGemvConfig(DesignConfig):
    """``params`` of ``family: lutgemv``.

    group: activations per table, g (2..4).   rows: output rows sharing one lookup, N (1..64).
    bits_max: the widest run-time weight precision (1..4 bits, bit-serial over planes).
    act_bits: signed activation width (2..8).   k_max: the longest vector (a multiple of g).
    symmetric: store half the table and negate for the complementary index (default true).
    ternary: ternary-native tables (weights -1/0/+1 as codes 0/1/2, zero point 1; 14-entry
    table per 3 weights, sign + 4-bit index per triple); needs group 3 and bits_max 2.
    scale_bits: 0 (default) or the width of unsigned per-row output scales (``scale`` stream).
    batch: activation vectors sharing each weight beat (1..8, default 1; SAIL-style batching).
    exp_bits: 0 (default) or the width of a per-group activation left shift (``x.shift``),
    0..3: block exponents within a window of ``2**exp_bits - 1`` octaves.
    """

    family = "lutgemv"
    group: int = 4
    rows: int = 8
    bits_max: int = 4
    act_bits: int = 8
    k_max: int = 256
    symmetric: bool = True
    ternary: bool = False
    scale_bits: int = 0
    batch: int = 1
    exp_bits: int = 0

    @classmethod
    def from_params(cls, fields, **common):
        shared = read_gemv_common(fields, 2, 4, 4)
        bits_max = fields.integer("bits_max", 1, 4, 4)
        symmetric = fields.choice("symmetric", (True, False), True)
        ternary = fields.choice("ternary", (True, False), False)
        fields.reject_unknown((*COMMON_PARAMS, "bits_max", "symmetric", "ternary"))
        if ternary and (shared["group"] != 3 or bits_max != 2 or not symmetric):
            raise fields.error("ternary", "ternary tables need group: 3, bits_max: 2 and symmetric: true "
                                          "(three weights per 14-entry mirrored table)")
        return cls(bits_max=bits_max, symmetric=symmetric, ternary=ternary, **shared, **common)

    @property
    def entries(self) -> int:
        if self.ternary:
            return len(golden.TERNARY_TRIPLES)
        return 1 << (self.group - 1) if self.symmetric else 1 << self.group

    @property
    def table_word_bits(self) -> int:
        return self.entries * golden.entry_width(self)

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle at 1-bit (or ternary) weights; ``bits``-bit weights: divided by ``bits``."""
        return self.rows * self.group * self.batch
