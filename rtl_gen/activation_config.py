"""Design-point parameters of the activation unit (GELU / SiLU approximator)."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models.activation import FUNCTIONS, METHODS, TABLE_MAX_INPUT_BITS
from lowbit.golden_models.fixedpoint import QFormat

from .config import DesignConfig, register


@register
@dataclass(frozen=True)
class ActivationConfig(DesignConfig):
    """``params`` of ``family: activation``.

    function: gelu | silu.   method: poly | ibert | table.
    input / output: signed Q<int>.<frac> formats (2..24 bits).
    order (poly): polynomial degree per segment, 1 (piecewise linear) .. 3.
    segments (poly): the most segments the fitter may use (2..1024).
    guard_bits (poly): extra fractional bits of the Horner evaluation (0..12).
    """

    family = "activation"
    function: str = "gelu"
    method: str = "poly"
    input: QFormat = QFormat(4, 11)
    output: QFormat = QFormat(4, 11)
    order: int = 2
    segments: int = 32
    guard_bits: int = 4

    @classmethod
    def from_params(cls, fields, **common):
        function = fields.choice("function", FUNCTIONS)
        method = fields.choice("method", METHODS, "poly")
        in_fmt = fields.qformat("input", signed=True, max_width=24)
        out_fmt = fields.qformat("output", in_fmt, signed=True, max_width=24)
        order = fields.integer("order", 1, 3, 2)
        segments = fields.integer("segments", 2, 1024, 32)
        guard_bits = fields.integer("guard_bits", 0, 12, 4)
        fields.reject_unknown(("function", "method", "input", "output", "order", "segments", "guard_bits"))
        if method == "ibert" and function != "gelu":
            raise fields.error("method", "'ibert' is I-BERT's i-GELU and computes GELU only; "
                                         "for silu use poly or table")
        if method == "table" and in_fmt.width > TABLE_MAX_INPUT_BITS:
            raise fields.error("method", f"'table' needs an input of at most {TABLE_MAX_INPUT_BITS} bits "
                                         f"(input {in_fmt} is {in_fmt.width}); use poly")
        if method == "poly" and in_fmt.width > 20:
            raise fields.error("input", f"{in_fmt} is {in_fmt.width} bits; the poly fitter allows at most 20")
        return cls(function=function, method=method, input=in_fmt, output=out_fmt, order=order,
                   segments=segments, guard_bits=guard_bits, **common)

    def params(self) -> dict:
        """Parameters as YAML values; the poly-only ones only for ``method: poly``."""
        params = super().params()
        if self.method != "poly":
            for key in ("order", "segments", "guard_bits"):
                params.pop(key)
        return params
