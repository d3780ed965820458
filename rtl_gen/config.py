"""Design points: YAML files in ``hw/`` loaded into frozen, validated dataclasses.

A design file reads::

    family: activation          # which block family (see FAMILIES)
    name: gelu_q4_11            # names build/<name>/ and the Verilog module
    description: ...            # optional, free text
    params: {...}               # the family's parameters (its config class validates them)
    targets: [ice40-up5k, ecp5-25k]

Every problem is reported as one ``ConfigError`` line naming the file, the field and what
would be allowed. The same config object feeds the generator, the golden model, the test
bench and the FPGA flow.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from lowbit.golden_models.fixedpoint import QFormat

KNOWN_TARGETS = ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k")
DEFAULT_TARGETS = ("ice40-up5k", "ecp5-25k")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A design point that cannot be built; the message is one line: ``file: field: why``."""

    def __init__(self, source: str, field: str, message: str):
        super().__init__(f"{source}: field '{field}': {message}")
        self.source, self.field = source, field


class _Fields:
    """Helpers a config class uses to read and check its ``params`` mapping."""

    def __init__(self, source: str, params: dict, prefix: str = "params"):
        self.source, self.params, self.prefix, self.used = source, params, prefix, set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"{self.prefix}.{key}", message)

    def get(self, key: str, default: Any = dataclasses.MISSING) -> Any:
        self.used.add(key)
        if key in self.params:
            return self.params[key]
        if default is dataclasses.MISSING:
            raise self.error(key, "is required")
        return default

    def choice(self, key: str, allowed: tuple, default: Any = dataclasses.MISSING) -> str:
        value = self.get(key, default)
        if value not in allowed:
            raise self.error(key, f"{value!r} is not allowed; expected one of {', '.join(map(str, allowed))}")
        return value

    def integer(self, key: str, lo: int, hi: int, default: Any = dataclasses.MISSING) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, f"{value!r} is not allowed; expected an integer from {lo} to {hi}")
        return value

    def qformat(self, key: str, default: Any = dataclasses.MISSING, signed: bool | None = None,
                max_width: int = 32) -> QFormat:
        value = self.get(key, default)
        try:
            fmt = value if isinstance(value, QFormat) else QFormat.parse(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if signed is not None and fmt.signed != signed:
            kind = "a signed Q<int>.<frac>" if signed else "an unsigned UQ<int>.<frac>"
            raise self.error(key, f"{value!r} is not allowed; expected {kind} format")
        if not 2 <= fmt.width <= max_width:
            raise self.error(key, f"{value!r} is {fmt.width} bits wide; allowed 2 to {max_width}")
        return fmt

    def reject_unknown(self, known: tuple) -> None:
        for key in self.params:
            if key not in self.used:
                raise self.error(key, f"unknown parameter; this family takes {', '.join(known)}")


@dataclass(frozen=True)
class DesignConfig:
    """Fields every design point has; a family subclasses it with its own parameters."""

    name: str
    family: ClassVar[str] = ""
    targets: tuple = DEFAULT_TARGETS
    description: str = ""
    source: str = "<command line>"

    @classmethod
    def from_params(cls, fields: _Fields, **common) -> "DesignConfig":
        raise NotImplementedError

    def params(self) -> dict:
        """The family parameters as plain YAML-able values (formats as text)."""
        skip = {"name", "targets", "description", "source"}
        return {f.name: (str(v) if isinstance(v, QFormat) else v)
                for f in dataclasses.fields(self) if f.name not in skip
                for v in [getattr(self, f.name)]}

    def to_yaml(self) -> str:
        """The resolved design point, loadable by ``load_design`` (round-trips exactly)."""
        doc = {"family": self.family, "name": self.name, "description": self.description,
               "params": self.params(), "targets": list(self.targets)}
        return yaml.safe_dump(doc, sort_keys=False)


FAMILIES: dict[str, type] = {}


def register(cls):
    FAMILIES[cls.family] = cls
    return cls


def parse_design(doc: Any, source: str) -> DesignConfig:
    """Validate a parsed YAML mapping into its family's config dataclass."""
    from . import families  # noqa: F401  (registers every family's config class)

    if not isinstance(doc, dict):
        raise ConfigError(source, "<top>", "expected a mapping with family, name, params, targets")
    for key in doc:
        if key not in ("family", "name", "description", "params", "targets"):
            raise ConfigError(source, key, "unknown field; allowed: family, name, description, params, targets")
    family = doc.get("family")
    if family not in FAMILIES:
        raise ConfigError(source, "family", f"{family!r} is not a block family; expected one of {', '.join(sorted(FAMILIES))}")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(source, "name", f"{name!r} is not allowed; expected an identifier such as gelu_q4_11")
    targets = doc.get("targets", list(DEFAULT_TARGETS))
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or any(t not in KNOWN_TARGETS for t in targets):
        raise ConfigError(source, "targets", f"{targets!r} is not allowed; expected a list drawn from {', '.join(KNOWN_TARGETS)}")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(source, "params", "expected a mapping of parameter names to values")
    description = doc.get("description") or ""
    cls = FAMILIES[family]
    return cls.from_params(_Fields(source, params), name=name, targets=tuple(targets),
                           description=str(description), source=source)


def load_design(path: str | Path) -> DesignConfig:
    """Load and validate one YAML design point."""
    return parse_design(read_yaml(path), str(path))


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``path``; an unreadable file or bad YAML is one ``ConfigError`` line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), "<file>", f"cannot be read ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise ConfigError(str(path), where, f"is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return doc


def parse_param_value(text: str) -> Any:
    """A ``key=value`` command-line value, typed as YAML would type it (``4`` -> int)."""
    return yaml.safe_load(text) if text.strip() else ""
