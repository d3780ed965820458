"""Functional coverage of the benches: declared cover points and crosses (``cocotb-coverage``),
a check that fails naming every missed bin, and an export beside ``results.xml``.

A bench test declares what it claims to reach, samples where it already decides things, and
checks at its end::

    cov = Coverage("tb_activation.every_input_with_pressure")
    cov.point("saturation", ["low", "high"])            # bins are labels (any hashable)
    cov.cross("stall_x_last", stalled=[0, 1], last=[0, 1])  # every combination is a bin
    cov.sample("saturation", "high")
    cov.sample("stall_x_last", (1, 1))                  # a cross is sampled with a tuple
    cov.check()     # AssertionError: "coverage: tb_activation...: missed bin 'low' of saturation"

A value outside a point's bins is ignored (a point counts only what it declares). Each
point is a ``cocotb_coverage.coverage.CoverPoint`` named ``<scope>.<name>``; a cross is a
cover point whose bins are the product of its axes (so it needs no shared sampling
function). ``check()`` also writes the export (every point of the process so far) into the
simulator's working folder, which the runner makes the test folder (``results.xml``'s):
``coverage.yml`` and ``coverage.xml`` (cocotb-coverage's formats) and ``coverage.json``
(``{point: {"bins": {label: hits}, "missed": [labels]}}``, labels as text), which
``lowbit verify`` reads. ``LOWBIT_COVERAGE_DIR`` overrides the folder.

Names of the LUT-GEMV bench's bins (its bench is hooked in separately):
:func:`lutgemv_points`; of the Hadamard bench's: :func:`hadamard_points` (and
:func:`rounding_case`, the bin of one exact result).
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Hashable, Iterable

from cocotb_coverage.coverage import CoverPoint, coverage_db

#: every Coverage made in this process, in order (what the export holds)
_ALL: list["Coverage"] = []
EXPORT_NAME = "coverage"


class Coverage:
    """The cover points of one scope (a bench test)."""

    def __init__(self, scope: str):
        self.scope = scope
        self._samplers: dict[str, object] = {}
        self._bins: dict[str, list] = {}
        _ALL.append(self)

    def point(self, name: str, bins: Iterable[Hashable]) -> "Coverage":
        """Declare point ``name`` with the given bins (each must be hit once)."""
        bins = list(bins)
        if not bins or len(set(bins)) != len(bins):
            raise ValueError(f"cover point {name!r}: bins must be distinct and at least one")
        full = f"{self.scope}.{name}"

        @CoverPoint(full, xf=lambda value: value, bins=bins)
        def sample(value):
            pass

        self._samplers[name], self._bins[name] = sample, bins
        return self

    def cross(self, name: str, **axes: Iterable[Hashable]) -> "Coverage":
        """Declare a cross: one bin per combination of the axes' values (in keyword order)."""
        return self.point(name, itertools.product(*(list(values) for values in axes.values())))

    def sample(self, name: str, value: Hashable) -> None:
        self._samplers[name](tuple(value) if isinstance(value, list) else value)

    def declares(self, name: str) -> bool:
        """Whether point ``name`` was declared (a config may have no bins for it)."""
        return name in self._bins

    def hits(self, name: str) -> dict:
        return dict(coverage_db[f"{self.scope}.{name}"].detailed_coverage)

    def missed(self) -> list[tuple[str, Hashable]]:
        """(point, bin) of every declared bin never hit."""
        return [(name, b) for name in self._bins for b, n in self.hits(name).items() if n == 0]

    def check(self) -> None:
        """Export, then fail naming every missed bin."""
        export()
        missed = self.missed()
        if missed:
            raise AssertionError(f"coverage: {self.scope}: " + "; ".join(
                f"missed bin {b!r} of {name}" for name, b in missed))

    def summary(self) -> dict:
        return {f"{self.scope}.{name}": {"bins": {str(b): n for b, n in self.hits(name).items()},
                                         "missed": [str(b) for b, n in self.hits(name).items()
                                                    if n == 0]}
                for name in self._bins}


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def export(folder: str | Path | None = None) -> Path:
    """Write ``coverage.{yml,xml,json}`` of every point so far; returns the JSON's path."""
    folder = Path(folder or os.environ.get("LOWBIT_COVERAGE_DIR") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    for cov in _ALL:
        summary.update(cov.summary())
    coverage_db.export_to_yaml(str(folder / f"{EXPORT_NAME}.yml"))
    coverage_db.export_to_xml(str(folder / f"{EXPORT_NAME}.xml"))
    path = folder / f"{EXPORT_NAME}.json"
    _write(path, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return path


def read_summary(folder: str | Path) -> dict | None:
    """The bins of ``folder/coverage.json`` as ``{"points", "bins", "hit", "missed": [...]}``,
    or ``None`` when the bench wrote none."""
    path = Path(folder) / f"{EXPORT_NAME}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    bins = sum(len(p["bins"]) for p in data.values())
    missed = [f"{name}:{b}" for name, p in sorted(data.items()) for b in p["missed"]]
    return {"points": len(data), "bins": bins, "hit": bins - len(missed), "missed": missed}


def lutgemv_points(config, scope: str, points: Iterable[str] | None = None) -> Coverage:
    """The LUT-GEMV / GEMV-baseline bench's declared bins, sampled by ``tb_lutgemv``; each
    test declares the ``points`` it decides (all when None), and only bins the config can
    reach: every run-time precision (``precision``: 1..bits_max, or 2 for ternary codes),
    zero point at 0 and at ``2**bits - 1`` (``zero_point``; none for ternary codes, whose
    zero point is fixed), vectors of one group and of
    ``k_max`` (``vector_length``), commands out of range (``clamped``: precision 0, above
    bits_max where the cmd field can carry it, a zero point of ``2**bits`` or more where
    some bits < bits_max, a vector longer than k_max), a command that differs from the one
    before it in back-to-back passes (``command_change``; none for ternary codes), reset during a weight pass
    (``reset``)."""
    bits_max = getattr(config, "bits_max", None) or getattr(config, "wbits", 1)
    ternary = bool(getattr(config, "ternary", False))
    clamped = ["bits_0"]
    if bits_max + 1 <= (1 << bits_max.bit_length()) - 1:
        clamped.append("bits_over")
    if bits_max > 1:
        clamped.append("zero_over")
    clamped.append("k_over")
    declared = {
        "precision": [2] if ternary else list(range(1, bits_max + 1)),
        "zero_point": [] if ternary else ["zero", "max"],
        "vector_length": ["one_group", "k_max"],
        "clamped": clamped,
        "command_change": [] if ternary else ["changed"],
        "reset": ["mid_vector"],
    }
    cov = Coverage(scope)
    for name in (declared if points is None else points):
        if declared[name]:
            cov.point(name, declared[name])
    return cov


#: the normalisation's rounding cases of one result ``v / 2**shift`` (``shift > 0``)
ROUNDING_CASES = ("exact", "below_half", "tie_even", "tie_odd", "above_half")


def rounding_case(value: int, shift: int) -> str:
    """Which case of round-half-even ``value / 2**shift`` meets: remainder 0 (``exact``),
    below or above half, or a tie whose floor quotient is even (kept: ``tie_even``) or odd
    (rounded up to the even neighbour: ``tie_odd``)."""
    quotient, remainder = value >> shift, value & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if remainder == 0:
        return "exact"
    if remainder != half:
        return "below_half" if remainder < half else "above_half"
    return "tie_odd" if quotient & 1 else "tie_even"


def hadamard_points(config, scope: str, points: Iterable[str]) -> Coverage:
    """The Hadamard bench's declared bins, sampled by ``tb_hadamard``; each test declares the
    ``points`` it decides, and only bins the config can reach: input elements at the most
    negative and most positive code (``input``), results at both exact output bounds
    (``output``: ``golden_models.hadamard.output_bounds``), every case of the normalisation's
    round-half-even (``rounding``: :func:`rounding_case`; none when ``shift`` is 0, no
    remainder other than 0 and half when it is 1), vectors back to back on ``i`` and on ``o``
    (a vector's first beat on the edge after the previous vector's last: ``back_to_back``),
    the output stalled and stalled while presenting ``last`` (``stall``: ``stalled``,
    ``long``, ``on_last``), a reset with an input vector partly sent and results in flight
    (``reset``)."""
    shift = config.shift
    rounding = [] if shift == 0 else [c for c in ROUNDING_CASES
                                      if shift > 1 or c in ("exact", "tie_even", "tie_odd")]
    declared = {
        "input": ["min", "max"],
        "output": ["min", "max"],
        "rounding": rounding,
        "back_to_back": ["input", "output"],
        "stall": ["stalled"],
        "long_stall": ["long", "on_last"],
        "reset": ["mid_vector", "results_in_flight"],
    }
    cov = Coverage(scope)
    for name in points:
        if declared[name]:
            cov.point(name, declared[name])
    return cov


__all__ = ["Coverage", "export", "read_summary", "lutgemv_points", "hadamard_points",
           "rounding_case", "ROUNDING_CASES"]
