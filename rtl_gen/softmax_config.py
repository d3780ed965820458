"""Design-point parameters of the streaming softmax unit."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models.fixedpoint import QFormat

from .config import DesignConfig, register

MAX_MODES = ("buffer", "online")


@register
@dataclass(frozen=True)
class SoftmaxConfig(DesignConfig):
    """``params`` of ``family: softmax``.

    input: signed Q<int>.<frac> score format (2..16 bits).
    output: unsigned UQ<int>.<frac> probability format (2..16 bits, at most 2 integer bits).
    n_max: longest row (2..1024); rows of any length 1..n_max at run time.
    max_mode: buffer (row buffer: max pass, exp/sum pass, output pass) or online (one input
        pass with a running max; the partial sum is rescaled by shifts as the max rises).
    mask: true adds a ``mask`` bit to every input beat (masked: output 0, not counted).
    exp_order: degree of the exp2-fraction polynomial, 0 (a table) .. 2.
    exp_segments: segments of the fraction, a power of two (2..1024).
    guard_bits: extra fraction bits of every intermediate (1..8).
    """

    family = "softmax"
    input: QFormat = QFormat(5, 2)
    output: QFormat = QFormat(0, 8, signed=False)
    n_max: int = 64
    max_mode: str = "buffer"
    mask: bool = False
    exp_order: int = 2
    exp_segments: int = 16
    guard_bits: int = 3

    @classmethod
    def from_params(cls, fields, **common):
        in_fmt = fields.qformat("input", signed=True, max_width=16)
        out_fmt = fields.qformat("output", "UQ0.8", signed=False, max_width=16)
        n_max = fields.integer("n_max", 2, 1024, 64)
        max_mode = fields.choice("max_mode", MAX_MODES, "buffer")
        mask = fields.choice("mask", (False, True), False)
        exp_order = fields.integer("exp_order", 0, 2, 2)
        exp_segments = fields.integer("exp_segments", 2, 1024, 16)
        guard_bits = fields.integer("guard_bits", 1, 8, 3)
        fields.reject_unknown(("input", "output", "n_max", "max_mode", "mask", "exp_order",
                               "exp_segments", "guard_bits"))
        if out_fmt.int_bits > 2:
            raise fields.error("output", f"{out_fmt} has {out_fmt.int_bits} integer bits; a probability "
                                         f"needs at most 1 (UQ0.x or UQ1.x; 2 allowed)")
        if exp_segments & (exp_segments - 1):
            raise fields.error("exp_segments", f"{exp_segments} is not a power of two")
        if exp_segments > 1 << (out_fmt.frac_bits + guard_bits):
            raise fields.error("exp_segments", f"{exp_segments} segments exceed the "
                                               f"{1 << (out_fmt.frac_bits + guard_bits)} exponent "
                                               f"fraction codes (output fraction + guard_bits)")
        return cls(input=in_fmt, output=out_fmt, n_max=n_max, max_mode=max_mode, mask=mask,
                   exp_order=exp_order, exp_segments=exp_segments, guard_bits=guard_bits, **common)
