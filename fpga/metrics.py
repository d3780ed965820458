"""How lowbit measures FPGA figures: one module used by every benchmark script and the sweep.

The project's rule
------------------
* **Area** is counted on each family's own basis (:func:`area`):

  - iCE40: *logic cells* = nextpnr's ``ICESTORM_LC`` count (``SynthReport.logic_cells``).
    A logic cell holds one LUT4, one flip-flop and one carry, so a design with more
    flip-flops than LUT4s costs its flip-flops, and a LUT4 count alone would flatter it.
  - ECP5: *LUT-equivalents* = LUT4 + 2 x CCU2C + LUTRAM (``SynthReport.lut_equiv``; a CCU2C
    carry cell occupies two LUT sites, a 16x4 distributed RAM four). ``SynthReport.lut4``
    already includes the LUTRAM on ECP5, so LUT-equivalents are ``lut4 + 2 * carry`` and the
    LUTRAM is counted once. The occupied SLICEs (2 LUT4 + 2 FF each) are reported beside.
  - Gowin: *LUT-equivalents* on ECP5's basis (LUT sites) = LUT4 + ALU + LUTRAM
    (``SynthReport.lut_equiv``): Gowin's carry cell ``ALU`` is one LUT4 site in ALU mode
    (ECP5's CCU2C is two), and ``lut4`` already includes the LUTs used as RAM.

  DSP blocks (SB_MAC16 / MULT18X18D / Gowin 18x18 multipliers) and block RAM (EBR /
  DP16KD / Gowin BSRAM, plus UP5K SPRAM) are
  reported beside every area and density figure, never left out silently.
* **Density** (:func:`density`) is area per MAC/cycle (logic cells per MAC/cycle on iCE40,
  LUT-equivalents per MAC/cycle on ECP5), with DSP and BRAM per MAC/cycle beside it.
* **Fmax** is the median over three nextpnr seeds (1, 2, 3), given with its min and max
  (:func:`synth_seeds`): single-seed figures of identical Verilog moved 10-20 % between
  reruns. Resources come from Yosys and are the same for every seed; nextpnr's logic-cell
  and SLICE counts can differ slightly between seeds, and the figures reported are those of
  the first seed's run (seed 1), with every seed's count kept in :class:`SeedResult`.
* **Calibration**: every benchmark run also places :func:`calibration_mac` (a plain
  registered 8x8 signed multiply into a 24-bit accumulator) on each of its targets
  (:func:`calibration_rows`: as the target maps it, and all in fabric on parts with DSP
  blocks), so figures from different runs and machines compare as ratios to it.
* **Fresh**: every figure comes from a flow run of the current sources in the same
  benchmark run; no benchmark reads a report left from an earlier run.

Contract
--------
* :func:`area` and :func:`density` take a :class:`~fpga.report.SynthReport` or its
  ``report.json`` dict and return an :class:`Area` / a dict; they raise ``ValueError`` when
  the report lacks what the family's basis needs.
* :func:`fmax_stats` -> ``(median, min, max)`` of a non-empty sequence.
* :func:`synth_seeds` runs :func:`fpga.flow.synthesize` once per seed in
  ``out_dir/seed<N>`` (Yosys in the first seed's run only; the later seeds, in sequence or
  in ``jobs`` processes when the factory pickles, place that netlist) and
  returns a :class:`SeedResult`; a failing seed raises the flow's ``ToolError``.
* :data:`SYNTH_COLUMNS` + :func:`synth_cells` are the table columns every benchmark uses.
"""

# No ``from __future__ import annotations``: Amaranth reads CalibrationMac's port annotations.
import multiprocessing
import pickle
import re
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .report import SynthReport
from .targets import get_target

__all__ = ["Area", "SeedResult", "area", "density", "fmax_stats", "synth_seeds",
           "CalibrationMac", "calibration_mac", "calibration_row", "calibration_rows", "SEEDS", "SYNTH_COLUMNS",
           "synth_cells", "format_fmax", "AREA_UNITS", "seed_summary", "CALIBRATION_NAME"]

#: the nextpnr seeds every Fmax figure is the median of
SEEDS = (1, 2, 3)
#: family -> the unit its area is counted in
AREA_UNITS = {"ice40": "LC", "ecp5": "LUT-eq", "gowin": "LUT-eq"}


@dataclass(frozen=True)
class Area:
    """Logic area on the family's basis, with what it leaves out beside it."""

    family: str
    value: int          # logic cells (iCE40) or LUT-equivalents (ECP5)
    unit: str           # "LC" or "LUT-eq"
    dsp: int
    bram: int
    spram: int = 0
    slices: int | None = None   # ECP5 only
    ff: int = 0
    lut4: int = 0

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


def _get(report, name, default=None):
    if isinstance(report, dict):
        return report.get(name, default)
    return getattr(report, name, default)


def area(report: SynthReport | dict) -> Area:
    """The report's logic area on its family's basis (module docstring), DSP/BRAM beside."""
    family = get_target(_get(report, "target")).family
    if family == "ice40":
        value = _get(report, "logic_cells")
        if value is None:   # report.json from before the field: nextpnr's utilisation holds it
            value = (_get(report, "utilisation") or {}).get("ICESTORM_LC", {}).get("used")
        if value is None:
            raise ValueError(f"report of {_get(report, 'design')!r} on {_get(report, 'target')} "
                             "has no ICESTORM_LC count")
    else:
        value = _get(report, "lut_equiv")
        if value is None:   # carry cells' LUT sites: CCU2C 2, Gowin ALU 1
            value = _get(report, "lut4") + (2 if family == "ecp5" else 1) * _get(report, "carry")
    return Area(family=family, value=int(value), unit=AREA_UNITS[family],
                dsp=int(_get(report, "dsp", 0)), bram=int(_get(report, "bram", 0)),
                spram=int(_get(report, "spram", 0) or 0), slices=_get(report, "slices"),
                ff=int(_get(report, "ff", 0)), lut4=int(_get(report, "lut4", 0)))


def density(report: SynthReport | dict, macs_per_cycle: float) -> dict:
    """Area, DSP and BRAM per MAC/cycle: ``{area, unit, per_mac, dsp_per_mac, bram_per_mac}``."""
    if not macs_per_cycle > 0:
        raise ValueError(f"macs_per_cycle must be positive, not {macs_per_cycle!r}")
    a = area(report)
    return {"area": a.value, "unit": a.unit, "per_mac": a.value / macs_per_cycle,
            "dsp": a.dsp, "bram": a.bram, "dsp_per_mac": a.dsp / macs_per_cycle,
            "bram_per_mac": a.bram / macs_per_cycle}


def fmax_stats(values: Sequence[float]) -> tuple[float, float, float]:
    """``(median, min, max)`` of the per-seed Fmax values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no Fmax values")
    return statistics.median(values), min(values), max(values)


@dataclass
class SeedResult:
    """One design on one target over several nextpnr seeds.

    ``report`` is the first seed's report: its resources are the ones quoted. ``fmax`` holds
    every seed's Fmax in seed order; ``areas`` every seed's logic area (nextpnr's packing may
    differ by a few cells between seeds). ``failed``: seeds after the first whose run failed
    (``synth_seeds(keep_going=True)``), with the flow's message; ``seeds`` and ``reports``
    then hold the seeds that finished.
    """

    name: str
    target: str
    seeds: tuple[int, ...]
    reports: "list[SynthReport]" = field(repr=False)
    failed: dict = field(default_factory=dict)

    @property
    def report(self) -> SynthReport:
        return self.reports[0]

    @property
    def fmax(self) -> list[float]:
        return [r.fmax_mhz for r in self.reports]

    @property
    def fmax_median(self) -> float:
        return fmax_stats(self.fmax)[0]

    @property
    def fmax_min(self) -> float:
        return min(self.fmax)

    @property
    def fmax_max(self) -> float:
        return max(self.fmax)

    @property
    def area(self) -> Area:
        return area(self.report)

    @property
    def areas(self) -> list[int]:
        return [area(r).value for r in self.reports]

    def density(self, macs_per_cycle: float) -> dict:
        return density(self.report, macs_per_cycle)

    def summary(self) -> dict:
        """JSON-ready figures (what the sweep records)."""
        return seed_summary(self)


def seed_summary(result: SeedResult) -> dict:
    a = result.area
    return {"area": a.value, "area_unit": a.unit, "logic_cells": result.report.logic_cells,
            "lut_equiv": result.report.lut_equiv, "slices": result.report.slices,
            "seeds": list(result.seeds), "fmax_seeds": [round(f, 2) for f in result.fmax],
            "fmax_median": round(result.fmax_median, 2), "fmax_min": round(result.fmax_min, 2),
            "fmax_max": round(result.fmax_max, 2), "area_seeds": result.areas,
            "resources_from_seed": result.seeds[0]}


def _synth_job(job):
    from .flow import synthesize

    factory, name, target, out, seed, kwargs = job
    return synthesize(factory(), name, target, out, seed=seed, **kwargs)


def _synth_job_or_error(job):
    """``_synth_job``, or the ``ToolError`` message when the run failed."""
    from .flow import ToolError

    try:
        return _synth_job(job)
    except ToolError as exc:
        return str(exc)


def synth_seeds(component_factory: Callable[[], wiring.Component], name: str, target: str,
                out_dir: Path, seeds: Sequence[int] = SEEDS, *, jobs: int = 1,
                keep_going: bool = False, **synth_kwargs) -> SeedResult:
    """Run the flow once per seed (``out_dir/seed<N>``); see the module docstring.

    ``component_factory()`` builds a fresh component for each run (an elaborated component
    is not reused). The first seed's run synthesises; the later seeds place its Yosys
    netlist when their ``top.v`` is identical (:func:`fpga.flow.synthesize`'s
    ``netlist_from``: Yosys is deterministic, so only its time is saved). ``jobs > 1`` runs
    the later seeds in a process pool when the factory pickles (a module-level function or
    ``functools.partial`` of one), else in sequence. ``keep_going``: a later seed whose run
    fails (e.g. over ``pnr_timeout_s``) is left out of the result and named in its
    ``failed``; the first seed's failure always raises.
    ``synth_kwargs`` go to :func:`fpga.flow.synthesize` (``freq_mhz``, ``wrap``, ...).
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("at least one seed is needed")
    out = Path(out_dir)
    # the first seed synthesises; the others place its Yosys netlist (flow's netlist_from)
    first = _synth_job((component_factory, name, target, out / f"seed{seeds[0]}", seeds[0],
                        synth_kwargs))
    job_list = [(component_factory, name, target, out / f"seed{s}", s,
                 {**synth_kwargs, "netlist_from": out / f"seed{seeds[0]}"}) for s in seeds[1:]]
    parallel = jobs > 1 and len(job_list) > 1
    if parallel:
        try:
            pickle.dumps(job_list[0])
        except (pickle.PicklingError, AttributeError, TypeError):
            parallel = False
    run = _synth_job_or_error if keep_going else _synth_job
    if parallel:
        # spawn: each worker imports the current sources afresh (no half-old forked modules)
        with ProcessPoolExecutor(max_workers=min(jobs, len(job_list)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = [first, *pool.map(run, job_list)]
    else:
        outcomes = [first, *(run(job) for job in job_list)]
    failed = {s: o for s, o in zip(seeds, outcomes) if isinstance(o, str)}
    return SeedResult(name=name, target=target,
                      seeds=tuple(s for s in seeds if s not in failed),
                      reports=[o for o in outcomes if not isinstance(o, str)], failed=failed)


class CalibrationMac(wiring.Component):
    """The calibration design: registered 8x8 signed multiply into a 24-bit accumulator.

    ``a`` and ``b`` are registered; every cycle the accumulator (the registered output
    ``acc``) adds their product: ``acc <= acc + a_r * b_r``. With ``dsp`` left to the flow,
    the multiplier maps as the target maps it (SB_MAC16 / MULT18X18D; the HX8K has none).
    """

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(24))

    def elaborate(self, platform):
        m = Module()
        a_r, b_r = Signal(signed(8)), Signal(signed(8))
        total = Signal(signed(24))
        m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), total.eq(total + a_r * b_r)]
        m.d.comb += self.acc.eq(total)
        return m


def calibration_mac() -> CalibrationMac:
    """A fresh :class:`CalibrationMac` (a picklable factory for :func:`synth_seeds`)."""
    return CalibrationMac()


#: the calibration row's name in every benchmark table
CALIBRATION_NAME = "calibration: 8x8 MAC -> 24 b"


def calibration_row(target: str, out_dir: Path = Path("build/calibration"),
                    seeds: Sequence[int] = SEEDS, *, fabric: bool = False,
                    jobs: int = 1) -> SeedResult:
    """Place :func:`calibration_mac` on ``target`` over ``seeds`` (in ``out_dir/<target>``).

    ``fabric=True`` maps the multiplier to logic (``fabric_multipliers``), the fabric
    reference on parts with DSP blocks.
    """
    label = CALIBRATION_NAME + (" (fabric)" if fabric else "")
    sub = f"{target}-fabric" if fabric else target
    return synth_seeds(calibration_mac, label, target, Path(out_dir) / sub, seeds, jobs=jobs,
                       fabric_multipliers=fabric)


def calibration_rows(target: str, out_dir: Path = Path("build/calibration"),
                     seeds: Sequence[int] = SEEDS, *, jobs: int = 1) -> list[SeedResult]:
    """The calibration MAC as the target maps it, plus all-fabric on parts with DSP blocks."""
    rows = [calibration_row(target, out_dir, seeds, jobs=jobs)]
    if get_target(target).dsp:
        rows.append(calibration_row(target, out_dir, seeds, fabric=True, jobs=jobs))
    return rows


def failure_reason(message: str) -> str:
    """A failed flow run in a table cell, from its ``ToolError`` message: ``"does not fit"``
    (nextpnr found no placement), ``"nextpnr over N s"`` (stopped at ``pnr_timeout_s``;
    ``" (seed S)"`` added when the log path names it), else ``"failed"``."""
    late = re.search(r"did not finish within (\S+) s", message)
    if late:
        seed = re.search(r"/seed(\d+)/", message)
        return f"nextpnr over {late.group(1)} s" + (f" (seed {seed.group(1)})" if seed else "")
    placement = ("BEL", "placement", "expand region", "Unable to place")
    return "does not fit" if any(s in message for s in placement) else "failed"


def format_fmax(result: SeedResult) -> str:
    """``"112.0 (111.6-116.8)"``: median (min-max) over the seeds, MHz; a seed that failed
    (``SeedResult.failed``) is named after it (``"; seed 2: nextpnr over 900 s"``)."""
    if len(result.seeds) == 1:
        text = f"{result.fmax_median:.1f} (seed {result.seeds[0]} only)"
    else:
        text = f"{result.fmax_median:.1f} ({result.fmax_min:.1f}-{result.fmax_max:.1f})"
    for seed, message in result.failed.items():
        text += f"; seed {seed}: " + failure_reason(message).split(" (seed")[0]
    return text


#: the synthesis columns of every benchmark table (see :func:`synth_cells`)
SYNTH_COLUMNS = ["logic area (iCE40 LC / ECP5 LUT-eq)", "LUT4", "FF", "DSP", "BRAM",
                 "Fmax MHz median (min-max)"]


def synth_cells(result: SeedResult) -> list[str]:
    """The :data:`SYNTH_COLUMNS` cells of one result (BRAM includes UP5K SPRAM when used).

    ``LUT4`` is Yosys's count (ECP5: with LUTRAM), beside the area basis, not instead of it.
    """
    a = result.area
    area_text = str(a) + (f" ({a.slices} SLICE)" if a.slices is not None else "")
    bram = str(a.bram) + (f" + {a.spram} SPRAM" if a.spram else "")
    return [area_text, str(a.lut4), str(a.ff), str(a.dsp), bram, format_fmax(result)]


def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m lowbit.fpga.metrics [target ...]``: print the calibration table."""
    import argparse

    from .targets import TARGETS

    parser = argparse.ArgumentParser(description="Place the calibration MAC (seeds 1, 2, 3).")
    parser.add_argument("targets", nargs="*", default=sorted(TARGETS))
    parser.add_argument("--out", type=Path, default=Path("build/calibration"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    print("| design | target | " + " | ".join(SYNTH_COLUMNS) + " |")
    print("|---|---|" + "---|" * len(SYNTH_COLUMNS))
    for target in args.targets:
        for result in calibration_rows(target, args.out, jobs=args.jobs):
            print("| " + " | ".join([result.name, target, *synth_cells(result)]) + " |", flush=True)


if __name__ == "__main__":
    _main()
