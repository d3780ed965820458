"""Family parameters declared once, as data: a :class:`Param` on each config dataclass field.

A family's config class declares every parameter on its field::

    order: int = integer(1, 3, 2, "polynomial degree per segment", when=("method", ("poly",)))

The one declaration gives the dataclass default, the loader's check and its error message
(:meth:`Param.check`), the unknown-key list, ``lowbit params FAMILY`` and the README's table
(:func:`markdown_table`). Kinds: ``int`` (``lo``..``hi``), ``bool``, ``choice``
(``choices``), ``qformat`` (``signed``, ``max_width``). ``default=REQUIRED`` makes a
parameter required (the dataclass field then has no default: construct by keyword);
``default_from`` names the parameter whose value is the default; ``when=(key, values)``
says the parameter exists only when ``key`` is one of ``values`` (it is still read and
checked, with its default, but left out of ``params()`` and the resolved YAML otherwise).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from lowbit.golden_models.fixedpoint import QFormat

REQUIRED = dataclasses.MISSING
KINDS = ("int", "bool", "choice", "qformat")


@dataclass(frozen=True)
class Param:
    """One family parameter (module docstring); ``name`` is filled in from its field."""

    kind: str
    doc: str
    default: Any = REQUIRED
    lo: int | None = None
    hi: int | None = None
    choices: tuple = ()
    signed: bool | None = None
    max_width: int = 32
    default_from: str | None = None
    when: tuple[str, tuple] | None = None
    name: str = ""

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_from is None

    def field(self) -> dataclasses.Field:
        """The dataclass field carrying this declaration (keyword-only)."""
        meta = {"param": self}
        if self.default_from is not None:
            return dataclasses.field(default=None, metadata=meta, kw_only=True)
        if self.default is REQUIRED:
            return dataclasses.field(metadata=meta, kw_only=True)
        return dataclasses.field(default=self.default, metadata=meta, kw_only=True)

    def applies(self, values: dict) -> bool:
        """Whether the parameter exists for these (other) parameter values."""
        return self.when is None or values.get(self.when[0]) in self.when[1]

    def check(self, value: Any, error: Callable[[str], Exception]) -> Any:
        """``value`` checked (and, for formats, parsed); ``error(message)`` builds the error."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
                raise error(f"{value!r} is not allowed; expected an integer from {self.lo} to {self.hi}")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise error(f"{value!r} is not allowed; expected true or false "
                            f"(YAML booleans; in Python: True, False)")
        elif self.kind == "choice":
            if value not in self.choices:
                raise error(f"{value!r} is not allowed; expected one of {', '.join(map(str, self.choices))}")
        else:
            return self._check_format(value, error)
        return value

    def _check_format(self, value: Any, error: Callable[[str], Exception]) -> QFormat:
        try:
            fmt = value if isinstance(value, QFormat) else QFormat.parse(value)
        except ValueError as exc:
            raise error(str(exc)) from None
        if self.signed is not None and fmt.signed != self.signed:
            kind = "a signed Q<int>.<frac>" if self.signed else "an unsigned UQ<int>.<frac>"
            raise error(f"{value!r} is not allowed; expected {kind} format")
        if not 2 <= fmt.width <= self.max_width:
            raise error(f"{value!r} is {fmt.width} bits wide; allowed 2 to {self.max_width}")
        return fmt

    # ---------------------------------------------------------------- documentation

    def allowed_text(self) -> str:
        if self.kind == "int":
            return f"{self.lo}..{self.hi}"
        if self.kind == "bool":
            return "true, false"
        if self.kind == "choice":
            return ", ".join(map(str, self.choices))
        sign = {True: "signed Q", False: "unsigned UQ", None: "Q or UQ"}[self.signed]
        return f"{sign} format, 2..{self.max_width} bits"

    def default_text(self) -> str:
        if self.default_from is not None:
            return f"= {self.default_from}"
        if self.default is REQUIRED:
            return "required"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)

    def doc_text(self) -> str:
        if self.when is None:
            return self.doc
        key, values = self.when
        return f"{self.doc} (only with {key}: {' or '.join(map(str, values))})"


def integer(lo: int, hi: int, default: Any, doc: str, **kw) -> dataclasses.Field:
    return Param("int", doc, default, lo=lo, hi=hi, **kw).field()


def boolean(default: Any, doc: str, **kw) -> dataclasses.Field:
    return Param("bool", doc, default, **kw).field()


def choice(choices: tuple, default: Any, doc: str, **kw) -> dataclasses.Field:
    return Param("choice", doc, default, choices=tuple(choices), **kw).field()


def qformat(default: Any, doc: str, *, signed: bool | None = None, max_width: int = 32,
            **kw) -> dataclasses.Field:
    if isinstance(default, str):
        default = QFormat.parse(default)
    return Param("qformat", doc, default, signed=signed, max_width=max_width, **kw).field()


def declared(cls) -> tuple[Param, ...]:
    """The :class:`Param` of every parameter field of config class ``cls``, in order."""
    return tuple(dataclasses.replace(f.metadata["param"], name=f.name)
                 for f in dataclasses.fields(cls) if "param" in f.metadata)


def text_lines(cls) -> list[str]:
    """``lowbit params FAMILY``: one line per parameter (name, kind, allowed, default, doc)."""
    params = declared(cls)
    name = max(len(p.name) for p in params)
    allowed = max(len(p.allowed_text()) for p in params)
    default = max(len(p.default_text()) for p in params)
    return [f"{p.name:{name}}  {p.kind:7}  {p.allowed_text():{allowed}}  "
            f"default {p.default_text():{default}}  {p.doc_text()}" for p in params]


def markdown_table(cls) -> str:
    """The README table of a family's parameters."""
    rows = ["| parameter | kind | allowed | default | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{p.name}` | {p.kind} | {p.allowed_text()} | {p.default_text()} | "
             f"{p.doc_text().replace('|', '&#124;')} |" for p in declared(cls)]
    return "\n".join(rows) + "\n"
