"""Design-point parameters of the multiplier-based GEMV baseline (``family: gemv_mult``)."""
from __future__ import annotations

from dataclasses import dataclass

from .config import DesignConfig, register
from .lutgemv_config import COMMON_PARAMS, read_gemv_common


@register
@dataclass(frozen=True)
class GemvMultConfig(DesignConfig):
    """``params`` of ``family: gemv_mult``.

    group: activations per beat, g (1..8).   rows: output rows per beat, R (1..64).
    wbits: weight code width (1..8); run-time precisions up to it use the same fields.
    act_bits: signed activation width (2..8).   k_max: the longest vector (a multiple of g).
    scale_bits: 0 (default) or the width of unsigned per-row output scales (``scale`` stream).
    batch: activation vectors sharing each weight beat (1..8, default 1; SAIL-style batching).
    exp_bits: 0 (default) or the width of a per-group activation left shift (``x.shift``),
    0..3: block exponents within a window of ``2**exp_bits - 1`` octaves.
    Peak (and steady) throughput: ``rows * group`` MACs per cycle at every precision.
    """

    family = "gemv_mult"
    group: int = 4
    rows: int = 2
    wbits: int = 4
    act_bits: int = 8
    k_max: int = 256
    scale_bits: int = 0
    batch: int = 1
    exp_bits: int = 0

    @classmethod
    def from_params(cls, fields, **common):
        shared = read_gemv_common(fields, 1, 8, 4)
        wbits = fields.integer("wbits", 1, 8, 4)
        fields.reject_unknown((*COMMON_PARAMS, "wbits"))
        return cls(wbits=wbits, **shared, **common)

    @property
    def bits_max(self) -> int:
        return self.wbits

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.rows * self.group * self.batch
