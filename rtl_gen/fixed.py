"""Fixed-point and pipeline helpers shared by the generators (Amaranth expressions).

Each helper mirrors a function of ``golden_models.fixedpoint`` exactly, so a generator and
its golden model narrow numbers the same way.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data

from lowbit.golden_models.fixedpoint import QFormat


def sample_layout(fmt: QFormat) -> data.StructLayout:
    """Stream payload of one fixed-point sample: ``data`` (low bits) then the ``last`` frame bit."""
    return data.StructLayout({"data": signed(fmt.width) if fmt.signed else fmt.width, "last": 1})


def round_half_even(value: Value, shift: int) -> Value:
    """``value / 2**shift`` rounded to nearest, ties to even (mirrors ``shift_round_half_even``).

    One adder: ``(value + 2**(shift-1) - 1 + value[shift]) >> shift``. With remainder ``r``
    and quotient ``q``: ``r > half`` carries into ``q``; ``r < half`` does not; ``r == half``
    carries exactly when ``q`` is odd (bit ``shift`` of ``value``). ``value[shift]`` enters as
    the adder's carry-in (an extra low bit on both operands: ``cin + 1`` carries exactly
    ``cin``), so synthesis builds one carry chain, not a constant add followed by a second one.
    """
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    carry_in = value.as_unsigned()[shift]
    widened = Cat(carry_in, value)
    if value.shape().signed:
        widened = widened.as_signed()
    return (widened + Const((((1 << (shift - 1)) - 1) << 1) | 1, shift + 1)) >> (shift + 1)


def saturate(value: Value, fmt: QFormat) -> Value:
    """Clamp ``value`` into ``fmt``'s range (mirrors ``golden_models.fixedpoint.saturate``).

    For a signed value and format, overflow is read off the bits above the format (not all
    equal to the sign), which needs no carry chain.
    """
    value = Value.cast(value)
    shape = value.shape()
    if fmt.signed and shape.signed:
        if shape.width <= fmt.width:
            return value
        sign = value[-1]
        upper = value[fmt.width - 1:]
        too_big = ~sign & upper.any()
        too_small = sign & ~upper.all()
        return Mux(too_big, fmt.max_int, Mux(too_small, fmt.min_int, value[:fmt.width].as_signed()))
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
        self.m, self.advance, self.stages = m, advance, 0

    def reg(self, value, name: str) -> Signal:
        """A register that loads ``value`` when the pipeline advances."""
        value = Value.cast(value)
        register = Signal(value.shape(), name=name)
        with self.m.If(self.advance):
            self.m.d.sync += register.eq(value)
        return register

    def stage(self, name: str, **values) -> SimpleNamespace:
        """Register every named value as one pipeline stage; count the stage."""
        self.stages += 1
        return SimpleNamespace(**{key: self.reg(value, f"{key}_{name}") for key, value in values.items()})

    def narrow(self, value, shift: int, fmt: QFormat, name: str, *riders):
        """Two stages: round half to even by ``shift`` bits, then saturate to ``fmt``.

        ``riders`` (e.g. the ``last`` bit) are delayed alongside; returns
        ``(result, *riders)``, all registered.
        """
        riders = {f"rider{i}": r for i, r in enumerate(riders)}
        s = self.stage(f"{name}_round", rounded=round_half_even(value, shift), **riders)
        s = self.stage(f"{name}_saturate", result=saturate(s.rounded, fmt),
                       **{k: getattr(s, k) for k in riders})
        return (s.result, *(getattr(s, k) for k in riders))

    def valid_chain(self, first_valid: Value, depth: int) -> Signal:
        """``depth`` valid flags behind ``first_valid``; returns the last one (reset to 0)."""
        valid = Value.cast(first_valid)
        for stage in range(depth):
            valid = self.reg(valid, f"valid_{stage}")
        return valid


__all__ = ["sample_layout", "round_half_even", "saturate", "StallPipeline", "Cat"]
