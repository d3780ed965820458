"""Design points: YAML files in ``hw/`` loaded into frozen, validated dataclasses.

A design file reads::

    family: activation          # which block family (rtl_gen.families.FAMILIES)
    name: gelu_q4_11            # names build/<name>/ and the Verilog module
    description: ...            # optional, free text
    params: {...}               # the family's parameters (its config class validates them)
    targets: [ice40-up5k, ecp5-25k]

Every problem is reported as one ``ConfigError`` line naming the file, the field and what
would be allowed. The same config object feeds the generator, the golden model, the test
bench and the FPGA flow. This module knows no family: the table of families and
``parse_design`` / ``load_design`` are in :mod:`rtl_gen.families`; parameters are declared
with :mod:`rtl_gen.params`.
"""
from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from lowbit.golden_models.fixedpoint import QFormat

from .params import REQUIRED, Param, declared

#: every FPGA target name; lowbit.fpga.targets.TARGETS has exactly these (asserted there)
KNOWN_TARGETS = ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k", "gowin-gw1nr9")
DEFAULT_TARGETS = ("ice40-up5k", "ecp5-25k")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A design point that cannot be built; the message is one line: ``file: field: why``."""

    def __init__(self, source: str, field: str, message: str):
        super().__init__(f"{source}: field '{field}': {message}")
        self.source, self.field = source, field


class _Fields:
    """The ``params`` mapping of one design file, read parameter by parameter."""

    def __init__(self, source: str, params: dict, prefix: str = "params"):
        self.source, self.params, self.prefix, self.used = source, params, prefix, set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"{self.prefix}.{key}", message)

    def read(self, param: Param, values: dict) -> Any:
        """``param``'s value (given, its default, or the value of ``default_from``), checked."""
        self.used.add(param.name)
        if param.name in self.params:
            value = self.params[param.name]
        elif param.default_from is not None:
            value = values[param.default_from]
        elif param.default is REQUIRED:
            raise self.error(param.name, "is required")
        else:
            value = param.default
        return param.check(value, lambda message: self.error(param.name, message))

    def reject_unknown(self, known: tuple) -> None:
        for key in self.params:
            if key not in self.used:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise self.error(key, f"unknown parameter{hint}; this family takes {', '.join(known)}")


@dataclass(frozen=True)
class DesignConfig:
    """Fields every design point has; a family subclasses it and declares its parameters on
    its fields (:mod:`rtl_gen.params`) and what it is made of (the class attributes below)."""

    name: str
    #: the ``family:`` key
    family: ClassVar[str] = ""
    #: ``"module:Class"`` of the generator component (built with the config)
    generator: ClassVar[str] = ""
    #: the cocotb test module of its bench
    bench: ClassVar[str] = ""
    #: the golden-model module (bit-exact to the RTL)
    golden_module: ClassVar[str] = ""
    #: an approximator of a float function: ``metrics()`` gives its accuracy
    approximator: ClassVar[bool] = False
    #: the throughput sentence of an IP package
    package_throughput: ClassVar[str] = "see the generator's docstring"
    #: ``host_vectors(rng, count)`` for a host adapter (stimulus + expected beats), or None
    host_vectors: ClassVar[Any] = None
    targets: tuple = DEFAULT_TARGETS
    description: str = ""
    source: str = "<command line>"

    def __post_init__(self):
        for param in declared(type(self)):
            if param.default_from is not None and getattr(self, param.name) is None:
                object.__setattr__(self, param.name, getattr(self, param.default_from))

    @classmethod
    def declared(cls) -> tuple[Param, ...]:
        """Every parameter of the family, in order."""
        return declared(cls)

    @classmethod
    def from_params(cls, fields: _Fields, **common) -> "DesignConfig":
        """Read every declared parameter, reject unknown keys, then :meth:`check`."""
        values: dict = {}
        for param in cls.declared():
            values[param.name] = fields.read(param, values)
        fields.reject_unknown(tuple(p.name for p in cls.declared()))
        config = cls(**values, **common)
        config.check()
        return config

    def check(self) -> None:
        """Cross-parameter rules of the family; raise ``self.error(key, message)``."""

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"params.{key}", message)

    def params(self) -> dict:
        """The family parameters as plain YAML-able values (formats as text); a parameter
        declared ``when`` another has some value is left out otherwise."""
        values = {p.name: getattr(self, p.name) for p in self.declared()}
        return {p.name: (str(v) if isinstance(v, QFormat) else v)
                for p in self.declared() if p.applies(values) for v in [values[p.name]]}

    def formats(self) -> dict:
        """The parameters that are fixed-point formats: name -> ``QFormat``."""
        return {p.name: getattr(self, p.name) for p in self.declared()
                if p.kind == "qformat" and p.name in self.params()}

    def component_class(self) -> type:
        module, _, cls = self.generator.partition(":")
        return getattr(importlib.import_module(module), cls)

    def throughput_per_cycle(self) -> float:
        """Results per clock at full rate (the generator's docstring, Timing)."""
        return 1.0

    def throughput_unit(self) -> str:
        return "output beats/cycle"

    def metrics(self) -> dict:
        """Tool-free figures (accuracy from the golden model, storage); a flat dict."""
        return {}

    def to_yaml(self) -> str:
        """The resolved design point, loadable by ``load_design`` (round-trips exactly)."""
        doc = {"family": self.family, "name": self.name, "description": self.description,
               "params": self.params(), "targets": list(self.targets)}
        return yaml.safe_dump(doc, sort_keys=False)


def check_common(doc: Any, source: str, families: dict) -> tuple[type, dict, dict]:
    """The family class, ``params`` mapping and common fields of a parsed design mapping."""
    if not isinstance(doc, dict):
        raise ConfigError(source, "<top>", "expected a mapping with family, name, params, targets")
    for key in doc:
        if key not in ("family", "name", "description", "params", "targets"):
            raise ConfigError(source, key, "unknown field; allowed: family, name, description, params, targets")
    family = doc.get("family")
    if family not in families:
        raise ConfigError(source, "family", f"{family!r} is not a block family; expected one of {', '.join(sorted(families))}")
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
    return families[family], params, dict(name=name, targets=tuple(targets),
                                          description=str(description), source=source)


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``path``; an unreadable file or bad YAML is one ``ConfigError`` line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "<file>", f"is not UTF-8 text (byte {exc.start}); save it "
                          "as UTF-8") from None
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
