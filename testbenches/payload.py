"""The bit layout of a lowbit stream payload (:class:`PayloadLayout`).

Amaranth writes a stream's payload to Verilog as one flat ``<name>__payload`` vector; a struct
payload has its first field in the low bits. :class:`PayloadLayout` packs named field values
into that vector and unpacks it again, range-checked, for the drivers and scoreboards.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PayloadLayout"]


class PayloadLayout:
    """The bit layout of a struct payload, mirroring an Amaranth ``data.StructLayout``.

    ``fields`` is a sequence of ``(name, width, signed)``; the first field occupies the low bits.
    :meth:`pack` takes every field by name, checks each value fits its field (``ValueError``
    otherwise) and returns the flat unsigned integer; :meth:`unpack` returns a dict of ints with
    signed fields sign-extended.
    """

    def __init__(self, fields: Sequence[tuple[str, int, bool]]):
        self.fields: tuple[tuple[str, int, bool], ...] = tuple(
            (str(name), int(width), bool(signed)) for name, width, signed in fields
        )
        names = [name for name, _, _ in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in payload layout: {names}")
        self._offsets: dict[str, int] = {}
        offset = 0
        for name, width, _ in self.fields:
            if width < 1:
                raise ValueError(f"payload field {name!r} has width {width}; it must be >= 1")
            self._offsets[name] = offset
            offset += width
        self.width: int = offset

    @classmethod
    def from_struct(cls, layout) -> PayloadLayout:
        """Build from an Amaranth ``data.StructLayout`` (fields must be plain ``Shape``-castable)."""
        from amaranth.hdl import Shape

        fields = []
        for name, field in layout:
            shape = Shape.cast(field.shape)
            fields.append((name, shape.width, shape.signed))
        return cls(fields)

    def offset(self, name: str) -> int:
        """The bit position of field ``name``'s lowest bit in the flat payload."""
        try:
            return self._offsets[name]
        except KeyError:
            raise KeyError(f"no field {name!r} in {self!r}") from None

    def pack(self, **values: int) -> int:
        missing = [name for name, _, _ in self.fields if name not in values]
        extra = sorted(set(values) - set(self._offsets))
        if missing or extra:
            raise ValueError(
                f"pack() needs exactly the fields {[n for n, _, _ in self.fields]}; "
                f"missing {missing}, unknown {extra}"
            )
        raw = 0
        for name, width, signed in self.fields:
            value = int(values[name])
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            if not lo <= value <= hi:
                kind = "signed" if signed else "unsigned"
                raise ValueError(
                    f"field {name!r} = {value} does not fit {kind}({width}) (range {lo}..{hi})"
                )
            raw |= (value & ((1 << width) - 1)) << self._offsets[name]
        return raw

    def unpack(self, raw: int) -> dict[str, int]:
        raw = int(raw)
        if not 0 <= raw < (1 << self.width):
            raise ValueError(f"raw payload {raw:#x} does not fit {self.width} bits")
        out = {}
        for name, width, signed in self.fields:
            value = (raw >> self._offsets[name]) & ((1 << width) - 1)
            if signed and value >> (width - 1):
                value -= 1 << width
            out[name] = value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {'s' if s else 'u'}{w}" for n, w, s in self.fields)
        return f"PayloadLayout({inner})"
