"""Stream payload layouts described field by field, for tools that pack beats without Python.

Contract
--------
* :func:`describe` turns an Amaranth payload shape into a JSON-ready tree; every node has
  ``kind`` and ``width`` (bits), bit offsets are relative to the node's own bit 0 (the
  payload's low bit at the top), first field in the low bits:

  ========= ===============================================================================
  kind      further keys
  ========= ===============================================================================
  scalar    ``signed``
  struct    ``fields``: ``[{name, lsb, layout}]`` in bit order (contiguous)
  union     ``fields``: ``[{name, lsb: 0, layout}]`` (overlapping)
  array     ``count``, ``stride`` (= the element's width), ``offsets`` (each element's
            lsb: ``k * stride``), ``element`` (the element's layout)
  ========= ===============================================================================

* :func:`leaves` flattens the same shape into leaf fields ``(name, lsb, width, signed)``
  in bit order: struct members by name, array elements as ``[k]``, joined as Amaranth's
  view accesses read (``data[2]``, ``s.scale[0]``, ``[3][0]`` for a top-level array). A
  payload that is a plain shape is one leaf ``data``; a union is one unsigned leaf (its
  members overlap). The leaves tile the payload: their widths sum to the payload width and
  each starts where the previous one ended.
* :func:`stream_members` lists every ``amaranth.lib.stream`` member of a component's
  signature as ``(name, "in"|"out", payload shape)``, in signature order; other members
  (plain ports) are left to the caller.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In

__all__ = ["describe", "leaves", "stream_members", "Leaf"]

Leaf = tuple[str, int, int, bool]      # (name, lsb, width, signed)


def describe(shape) -> dict:
    """The layout tree of ``shape`` (module docstring)."""
    if isinstance(shape, data.ArrayLayout):
        element = describe(shape.elem_shape)
        stride = element["width"]
        return {"kind": "array", "width": shape.size, "count": shape.length, "stride": stride,
                "offsets": [k * stride for k in range(shape.length)], "element": element}
    if isinstance(shape, (data.StructLayout, data.UnionLayout)):
        kind = "struct" if isinstance(shape, data.StructLayout) else "union"
        fields = [{"name": name, "lsb": field.offset, "layout": describe(field.shape)}
                  for name, field in sorted(shape, key=lambda item: item[1].offset)]
        return {"kind": kind, "width": shape.size, "fields": fields}
    if isinstance(shape, data.Layout):      # another Layout subclass: opaque bits
        return {"kind": "scalar", "width": shape.size, "signed": False}
    s = Shape.cast(shape)
    return {"kind": "scalar", "width": s.width, "signed": s.signed}


def leaves(shape) -> list[Leaf]:
    """Flat leaf fields of ``shape`` in bit order (module docstring)."""
    tree = describe(shape)
    if tree["kind"] == "scalar":
        return [("data", 0, tree["width"], tree["signed"])]
    out: list[Leaf] = []
    _walk(tree, "", 0, out)
    return out


def _walk(tree: dict, name: str, lsb: int, out: list) -> None:
    kind = tree["kind"]
    if kind == "struct":
        for field in tree["fields"]:
            joined = f"{name}.{field['name']}" if name else field["name"]
            _walk(field["layout"], joined, lsb + field["lsb"], out)
    elif kind == "array":
        for k, offset in enumerate(tree["offsets"]):
            _walk(tree["element"], f"{name}[{k}]", lsb + offset, out)
    elif tree["width"]:             # scalar, or a union taken whole
        out.append((name or "data", lsb, tree["width"], bool(tree.get("signed", False))))


def stream_members(component: wiring.Component) -> list[tuple[str, str, object]]:
    """``[(name, "in"|"out", payload shape)]`` of every stream member (module docstring)."""
    out = []
    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            shape = member.signature.members["payload"].shape
            out.append((name, "in" if member.flow == In else "out", shape))
    return out
