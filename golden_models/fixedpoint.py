"""Fixed-point formats and the narrowing steps every lowbit model shares.

Formats are written ``Q<int>.<frac>`` (signed: one sign bit, ``int`` integer bits, ``frac``
fractional bits, so Q4.11 is 16 bits wide) and ``UQ<int>.<frac>`` (unsigned, no sign bit).
A value is stored as the integer ``v`` and means ``v * 2**-frac``.

All functions take and return integers (Python ints or numpy int64 arrays); nothing here
rounds through floating point.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_FORMAT_RE = re.compile(r"^(U?)Q(\d+)\.(\d+)$")


@dataclass(frozen=True)
class QFormat:
    """A fixed-point number format: ``signed``, ``int_bits`` and ``frac_bits``."""

    int_bits: int
    frac_bits: int
    signed: bool = True

    @classmethod
    def parse(cls, text: str) -> "QFormat":
        """Parse ``"Q4.11"`` or ``"UQ0.8"``; raise ValueError naming what is allowed."""
        match = _FORMAT_RE.match(str(text).strip())
        if not match:
            raise ValueError(
                f"{text!r} is not a fixed-point format; expected Q<int>.<frac> or "
                f"UQ<int>.<frac>, such as Q4.11 or UQ0.8"
            )
        unsigned, int_bits, frac_bits = match.groups()
        fmt = cls(int(int_bits), int(frac_bits), signed=not unsigned)
        if fmt.width < 1:
            raise ValueError(f"{text!r} has no bits")
        return fmt

    def __str__(self) -> str:
        return f"{'' if self.signed else 'U'}Q{self.int_bits}.{self.frac_bits}"

    @property
    def width(self) -> int:
        """Total bits, including the sign bit of a signed format."""
        return self.int_bits + self.frac_bits + (1 if self.signed else 0)

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac_bits

    def all_values(self) -> np.ndarray:
        """Every representable integer code, ascending (int64)."""
        return np.arange(self.min_int, self.max_int + 1, dtype=np.int64)

    def to_float(self, codes) -> np.ndarray:
        return np.asarray(codes, dtype=np.float64) * self.lsb


def shift_round_half_even(value, shift: int):
    """``value / 2**shift`` rounded to the nearest integer, ties to even (exact, integer-only).

    A negative ``shift`` is an exact left shift.
    """
    if shift <= 0:
        return value << (-shift) if shift else value
    value = np.asarray(value, dtype=np.int64) if not isinstance(value, int) else value
    quotient = value >> shift
    remainder = value - (quotient << shift)
    half = 1 << (shift - 1)
    round_up = (remainder > half) | ((remainder == half) & ((quotient & 1) == 1))
    if isinstance(value, int):
        return quotient + int(round_up)
    return quotient + round_up.astype(np.int64)


def saturate(value, fmt: QFormat):
    """Clamp integer codes into ``fmt``'s range (saturation, not wrap-around)."""
    if isinstance(value, int):
        return min(max(value, fmt.min_int), fmt.max_int)
    return np.clip(value, fmt.min_int, fmt.max_int)


def quantize_float(value, fmt: QFormat):
    """The correctly rounded code of a float: round half to even, then saturate."""
    scaled = np.asarray(value, dtype=np.float64) * 2.0 ** fmt.frac_bits
    return saturate(np.rint(scaled).astype(np.int64), fmt)


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement integer holding every value in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    return max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1
