"""Fixed-point and pipeline helpers shared by the generators (Amaranth expressions).

Each helper mirrors a function of ``golden_models.fixedpoint`` exactly, so a generator and
its golden model narrow numbers the same way.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data

from golden_models.fixedpoint import QFormat


def sample_layout(fmt: QFormat) -> data.StructLayout:
    """Stream payload of one fixed-point sample: ``data`` (low bits) then the ``last`` frame bit."""
    return data.StructLayout({"data": signed(fmt.width) if fmt.signed else fmt.width, "last": 1})


def round_half_even(value: Value, shift: int) -> Value:
    """``value / 2**shift`` rounded to nearest, ties to even (mirrors ``shift_round_half_even``)."""
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    quotient = value >> shift
    remainder = value.as_unsigned()[:shift]
    half = Const(1 << (shift - 1), shift)
    round_up = (remainder > half) | ((remainder == half) & quotient[0])
    return quotient + round_up


def saturate(value: Value, fmt: QFormat) -> Value:
    """Clamp ``value`` into ``fmt``'s range (mirrors ``golden_models.fixedpoint.saturate``)."""
    value = Value.cast(value)
    clamped = Mux(value > fmt.max_int, fmt.max_int, Mux(value < fmt.min_int, fmt.min_int, value))
    return clamped.as_signed()[:fmt.width].as_signed() if fmt.signed else clamped[:fmt.width]


class StallPipeline:
    """Registers for a pipeline whose stages all advance together.

    ``advance`` is high when the output register is empty or being read
    (``~o.valid | o.ready``); every register loads only then, so a stalled consumer freezes
    the whole pipeline and no beat is dropped or duplicated. One result per cycle while the
    consumer is ready.
    """

    def __init__(self, m: Module, advance: Value):
        self.m, self.advance, self.depth = m, advance, 0

    def reg(self, value, name: str) -> Signal:
        """A register that loads ``value`` when the pipeline advances."""
        value = Value.cast(value)
        register = Signal(value.shape(), name=name)
        with self.m.If(self.advance):
            self.m.d.sync += register.eq(value)
        return register

    def narrow(self, value, shift: int, fmt: QFormat, name: str, *riders):
        """Two stages: round half to even by ``shift`` bits, then saturate to ``fmt``.

        ``riders`` (e.g. the ``last`` bit) are delayed alongside; returns
        ``(result, *riders)``, all registered.
        """
        rounded = self.reg(round_half_even(value, shift), f"{name}_rounded")
        riders = [self.reg(r, f"{name}_rider{i}_a") for i, r in enumerate(riders)]
        result = self.reg(saturate(rounded, fmt), f"{name}_saturated")
        riders = [self.reg(r, f"{name}_rider{i}_b") for i, r in enumerate(riders)]
        return (result, *riders)

    def valid_chain(self, first_valid: Value, depth: int) -> Signal:
        """``depth`` valid flags behind ``first_valid``; returns the last one (reset to 0)."""
        valid = Value.cast(first_valid)
        for stage in range(depth):
            valid = self.reg(valid, f"valid_{stage}")
        self.depth = depth
        return valid


__all__ = ["sample_layout", "round_half_even", "saturate", "StallPipeline", "Cat"]
