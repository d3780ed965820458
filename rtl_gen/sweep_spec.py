"""Sweep files: a base design plus axes, expanded into validated design points.

A sweep file reads::

    name: act_segments            # identifier; results go to build/sweeps/<name>/
    description: ...              # optional
    steps: [sim, synth]           # what runs after generation (generate always runs)
    targets: [ice40-up5k]         # synthesis targets (default: each design's own targets)
    seed: 1                       # bench seed (fixed, so a cached result replays exactly)
    freq_mhz: 50                  # optional clock constraint
    groups:                       # one or more; ``base`` + ``axes`` at top level = one group
      - base: ../hw/gelu_q3_4.yaml    # a design file (relative to the sweep file, then to
                                      # the current folder) or an inline design mapping
        axes:                         # cartesian product of every axis
          segments: [4, 8, 16]        # a list of values of a family parameter ...
          order: {from: 1, to: 2}     # ... or an inclusive range (step: N, or times: N)
          target: [ice40-up5k, ecp5-25k]  # the synthesis target as an axis
        sim_tests: [corners_at_full_rate] # optional: run only these cocotb tests
        evaluate: {bits: 4, group: 32}    # optional (here or at top level): evaluate each point
                                          # on all-MiniLM-L6-v2 (``lowbit evaluate``)

Accuracy as an axis: with ``evaluate`` (a mapping of :data:`EVALUATE_KEYS`), every point is
also run on the model in the role its family has there (linear layers, GELU, softmax or
rotation; none: reported as n/a) and its result row gets the cosine and Spearman figures;
an axis ``evaluate.<key>`` (e.g. ``evaluate.bits: [2, 3, 4]``) varies that key. The keys are
checked here for their type; whether a design can hold the scheme is the point's own
result (a failed ``evaluate`` step).

Bounded work: a sweep counts its points before it expands them and refuses more than
``max_points`` (:data:`DEFAULT_MAX_POINTS`; ``lowbit sweep --max-points`` raises it) with one
line, and a range axis is refused before its values are built when it alone is longer;
:func:`sweep_name` reads a sweep file's name without expanding anything.

Structural problems raise one-line :class:`~rtl_gen.config.ConfigError` (file, field, what
is allowed), as design files do. A *point* whose parameters its family rejects is not a
structural problem: it is kept with its error (``Point.error``) so the sweep records it as
a failed point and carries on.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import _NAME_RE, KNOWN_TARGETS, ConfigError, read_yaml
from .families import parse_design

STEPS = ("sim", "synth")
_TOP_KEYS = ("name", "description", "steps", "targets", "seed", "freq_mhz", "groups", "base",
             "axes", "sim_tests", "evaluate")
_GROUP_KEYS = ("base", "axes", "sim_tests", "evaluate")
#: the keys of a sweep's ``evaluate`` mapping and the types each takes (``lowbit evaluate``'s
#: options: the quantisation of a linear-layer point; rotation; a truncated model)
EVALUATE_KEYS = {"bits": (int,), "group": (int, str), "zero_point": (bool,), "mse": (bool,),
                 "method": (str,), "damp": (float, int), "act_scale": (str,),
                 "sequential": (bool,), "rotate": (bool,), "linear": (str,), "layers": (int,),
                 "limit": (int,)}
EVALUATE_AXIS = "evaluate."
_TARGET_AXES = ("target", "targets")
#: the most points a sweep may expand to unless the caller allows more
DEFAULT_MAX_POINTS = 10_000


@dataclass(frozen=True)
class Point:
    """One design point of a sweep: the design document and what to run on it."""

    name: str
    group: int
    family: str
    doc: dict                  # family/name/params/targets, as parse_design takes it
    axes: dict                 # axis name -> this point's value (the table's columns)
    steps: tuple
    targets: tuple             # synthesis targets of this point
    seed: int
    freq_mhz: float | None
    sim_tests: tuple = ()
    error: str | None = None   # the family rejected this combination (one line)
    evaluate: dict | None = None   # evaluate on the model with these options (None: no)

    def identity(self) -> dict:
        """Everything that determines this point's results (hashed into the cache key)."""
        out = {"doc": self.doc, "steps": list(self.steps), "targets": list(self.targets),
               "seed": self.seed, "freq_mhz": self.freq_mhz, "sim_tests": list(self.sim_tests)}
        if self.evaluate is not None:
            out["evaluate"] = self.evaluate
        return out


@dataclass
class SweepSpec:
    name: str
    source: str
    description: str = ""
    points: list[Point] = field(default_factory=list)
    grouped: bool = False      # written with ``groups:`` (else one top-level base + axes)


def _err(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(source, where, message)


def expand_axis(source: str, where: str, value: Any, max_values: int = DEFAULT_MAX_POINTS) -> list:
    """The values of one axis: a non-empty list, or ``{from, to, step | times}`` (inclusive).
    A range longer than ``max_values`` is refused before its values are built."""
    if isinstance(value, list):
        if not value:
            raise _err(source, where, "is an empty list; give at least one value")
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"from", "to", "step", "times"}
        if unknown:
            raise _err(source, where, f"unknown range key {sorted(unknown)[0]!r}; allowed: from, to, step, times")
        lo, hi = value.get("from"), value.get("to")
        step, times = value.get("step"), value.get("times")
        ints = [v for v in (lo, hi, step, times) if v is not None]
        if lo is None or hi is None or any(isinstance(v, bool) or not isinstance(v, int) for v in ints):
            raise _err(source, where, "a range needs integer 'from' and 'to' (and optional integer 'step' or 'times')")
        if step is not None and times is not None:
            raise _err(source, where, "give 'step' or 'times', not both")
        if times is not None:
            if times < 2 or lo < 1:
                raise _err(source, where, "a geometric range needs 'times' >= 2 and 'from' >= 1")
            values, v = [], lo
            while v <= hi:
                values.append(v)
                v *= times
        else:
            step = 1 if step is None else step
            if step < 1:
                raise _err(source, where, f"step {step} is not allowed; expected an integer >= 1")
            count = len(range(lo, hi + 1, step))   # computed, not built
            if count > max_values:
                raise _too_many(source, where, count, max_values)
            values = list(range(lo, hi + 1, step))
        if not values:
            raise _err(source, where, f"range from {lo} to {hi} is empty")
        return values
    return [value]  # a single value: a fixed override


def _too_many(source: str, where: str, count: int, limit: int) -> ConfigError:
    return _err(source, where, f"expands to {count:,} points, more than the limit of {limit:,}; "
                               "narrow the axes or raise the limit with --max-points")


def _load_base(source: str, where: str, base: Any, folder: Path) -> dict:
    if isinstance(base, dict):
        return dict(base)
    if not isinstance(base, str):
        raise _err(source, where, "expected a design file path or an inline design mapping")
    candidates = [folder / base, Path(base)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise _err(source, where, f"design file {base!r} not found (looked beside the sweep file and in the current folder)")
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise _err(source, where, f"{path} does not hold a design mapping")
    parse_design(doc, str(path))  # the base itself must be valid: report it in its own file
    return doc


def _token(value: Any) -> str:
    text = "_".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def _string_list(source: str, where: str, value: Any, allowed: tuple | None = None) -> tuple:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(source, where, "expected a list of names")
    if allowed is not None:
        for v in value:
            if v not in allowed:
                raise _err(source, where, f"{v!r} is not allowed; expected names from {', '.join(allowed)}")
    return tuple(value)


def _evaluate_spec(source: str, where: str, value: Any) -> dict | None:
    """A checked ``evaluate`` mapping (``true``: every default), or None when absent."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise _err(source, where, "expected a mapping of " + ", ".join(EVALUATE_KEYS) + " (or true)")
    for key, v in value.items():
        _evaluate_value(source, f"{where}.{key}", key, v)
    return dict(value)


def _evaluate_value(source: str, where: str, key: Any, value: Any) -> None:
    if key not in EVALUATE_KEYS:
        raise _err(source, where, f"unknown evaluate option; allowed: {', '.join(EVALUATE_KEYS)}")
    types = EVALUATE_KEYS[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise _err(source, where, f"{value!r} is not allowed; expected "
                   + " or ".join(t.__name__ for t in types))


def parse_sweep(doc: Any, source: str, folder: Path = Path("."), *,
                max_points: int = DEFAULT_MAX_POINTS) -> SweepSpec:
    """Validate a parsed sweep mapping and expand it into points (at most ``max_points``)."""
    if not isinstance(doc, dict):
        raise _err(source, "<top>", "expected a mapping with name, groups (or base + axes)")
    for key in doc:
        if key not in _TOP_KEYS:
            raise _err(source, key, f"unknown field; allowed: {', '.join(_TOP_KEYS)}")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err(source, "name", f"{name!r} is not allowed; expected an identifier such as act_segments")
    steps = _string_list(source, "steps", doc.get("steps", list(STEPS)), STEPS)
    targets = doc.get("targets")
    if targets is not None:
        targets = _string_list(source, "targets", targets, KNOWN_TARGETS)
    seed = doc.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _err(source, "seed", f"{seed!r} is not allowed; expected an integer >= 0")
    freq = doc.get("freq_mhz")
    if freq is not None and (isinstance(freq, bool) or not isinstance(freq, (int, float)) or freq <= 0):
        raise _err(source, "freq_mhz", f"{freq!r} is not allowed; expected a positive number")
    if "groups" in doc:
        if "base" in doc or "axes" in doc:
            raise _err(source, "groups", "give either 'groups' or a top-level 'base' + 'axes', not both")
        groups = doc["groups"]
        if not isinstance(groups, list) or not groups:
            raise _err(source, "groups", "expected a non-empty list of {base, axes} mappings")
        prefixes = [f"groups[{i}]" for i in range(len(groups))]
    elif "base" in doc:
        groups, prefixes = [{k: doc[k] for k in _GROUP_KEYS if k in doc}], [""]
    else:
        raise _err(source, "groups", "is required (or a top-level 'base' with 'axes')")

    spec = SweepSpec(name=name, source=source, description=str(doc.get("description") or ""),
                     grouped="groups" in doc)
    used: set[str] = set()
    total = 0
    for index, (group, prefix) in enumerate(zip(groups, prefixes)):
        at = (lambda key, prefix=prefix: f"{prefix}.{key}" if prefix else key)
        if not isinstance(group, dict):
            raise _err(source, prefix, "expected a mapping with base and axes")
        for key in group:
            if key not in _GROUP_KEYS:
                raise _err(source, at(key), f"unknown field; allowed: {', '.join(_GROUP_KEYS)}")
        if "base" not in group:
            raise _err(source, at("base"), "is required: a design file or an inline design")
        base = _load_base(source, at("base"), group["base"], folder)
        axes = group.get("axes") or {}
        if not isinstance(axes, dict):
            raise _err(source, at("axes"), "expected a mapping of parameter names to lists or ranges")
        sim_tests = _string_list(source, at("sim_tests"), group.get("sim_tests", []))
        evaluate = _evaluate_spec(source, at("evaluate"), group.get("evaluate", doc.get("evaluate")))
        names, values = [], []
        for key, value in axes.items():
            where = at(f"axes.{key}")
            pname = str(key).removeprefix("params.")
            if pname.startswith(EVALUATE_AXIS):
                if evaluate is None:
                    raise _err(source, where, "an evaluate axis needs an 'evaluate' mapping "
                               "(e.g. evaluate: {}) in the sweep or its group")
                vals = expand_axis(source, where, value, max_points)
                for v in vals:
                    _evaluate_value(source, where, pname.removeprefix(EVALUATE_AXIS), v)
            elif pname in _TARGET_AXES:
                vals = [list(v) if isinstance(v, list) else [v]
                        for v in expand_axis(source, where, value, max_points)]
                for v in vals:
                    _string_list(source, where, v, KNOWN_TARGETS)
                pname = "target"
            else:
                vals = expand_axis(source, where, value, max_points)
            names.append(pname)
            values.append(vals)
        total += math.prod(map(len, values))
        if total > max_points:
            raise _too_many(source, at("axes") if len(groups) == 1 else "groups", total, max_points)
        for combo in itertools.product(*values):
            params = dict(base.get("params") or {})
            point_targets = targets
            point_eval = dict(evaluate) if evaluate is not None else None
            for pname, value in zip(names, combo):
                if pname == "target":
                    point_targets = tuple(value)
                elif pname.startswith(EVALUATE_AXIS):
                    point_eval[pname.removeprefix(EVALUATE_AXIS)] = value
                else:
                    params[pname] = value
            base_name = str(base.get("name") or f"{base.get('family')}_point")
            tokens = [f"{n.replace(EVALUATE_AXIS, 'eval_')}{_token(v)}" for n, v in zip(names, combo)]
            pname = base_name + ("__" + "_".join(tokens) if names else "")
            while pname in used:
                pname += "_dup"
            used.add(pname)
            design = {k: v for k, v in base.items() if k != "description"}
            design.update(name=pname, params=params)
            error = None
            try:
                config = parse_design(design, f"{source}: point {pname}")
                design_targets = tuple(config.targets)
            except ConfigError as exc:
                axis = exc.field.removeprefix("params.")
                if axis in names and "unknown parameter" in str(exc):  # a typo, not a design choice
                    raise _err(source, at(f"axes.{axis}"), str(exc).split("': ", 1)[-1]) from None
                error, design_targets = str(exc), tuple(base.get("targets") or ())
            spec.points.append(Point(
                name=pname, group=index, family=str(base.get("family")), doc=design,
                axes=dict(zip(names, ["+".join(v) if n == "target" else v for n, v in zip(names, combo)])),
                steps=steps, targets=tuple(point_targets or design_targets) if "synth" in steps else (),
                seed=seed, freq_mhz=float(freq) if freq is not None else None,
                sim_tests=sim_tests, error=error, evaluate=point_eval))
    return spec


def load_sweep(path: str | Path, *, max_points: int = DEFAULT_MAX_POINTS) -> SweepSpec:
    """Load, validate and expand one sweep file (at most ``max_points`` points)."""
    return parse_sweep(read_yaml(path), str(path), Path(path).parent, max_points=max_points)


def sweep_name(path: str | Path) -> str:
    """The ``name`` of a sweep file, read without expanding (or validating) its axes."""
    doc = read_yaml(path)
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err(str(path), "name", f"{name!r} is not allowed; expected an identifier such as act_segments")
    return name
