"""Synthesis reports: parse Yosys/nextpnr outputs, hold them, render them.

Contract
--------
* :func:`count_resources` turns Yosys ``stat -json`` cell counts into the fields of
  :class:`SynthReport` for one FPGA family:

  ====== ============================ ==================================================
  field  iCE40                        ECP5
  ====== ============================ ==================================================
  lut4   ``SB_LUT4``                  ``LUT4`` + 4 per ``TRELLIS_DPR16X4`` (LUTs as RAM)
  lutram 0                            4 per ``TRELLIS_DPR16X4`` (included in ``lut4``)
  ff     ``SB_DFF*``                  ``TRELLIS_FF``
  carry  ``SB_CARRY``                 ``CCU2C`` (2 bits and 2 LUT sites each, not in lut4)
  dsp    ``SB_MAC16``                 ``MULT18X18D``
  bram   ``SB_RAM40_4K*``             ``DP16KD`` + ``PDPW16KD``
  spram  ``SB_SPRAM256KA``            0
  ====== ============================ ==================================================

  A 16x4 distributed RAM occupies two slices (4 LUT sites) of storage; its write-port
  slice (``TRELLIS_RAMW``) is not counted here but appears in ``utilisation``.

  Gowin (GW1N/GW1NR, ``synth_gowin``):

  ====== ==============================================================================
  field  Gowin
  ====== ==============================================================================
  lut4   ``LUT1``..``LUT4`` + LUTs as RAM (4 per 16x4 ``RAM16S4``/``RAM16SDP4``, 2 per
         16x2, 1 per 16x1)
  lutram those LUTs as RAM (included in ``lut4``)
  ff     ``DFF*``
  carry  ``ALU`` (the carry cell: one bit and one LUT4 site in ALU mode each, not in lut4)
  dsp    18x18-multiplier equivalents: ``MULT18X18``, ``MULTALU18X18``, 2 per
         ``MULTADDALU18X18`` / ``MULTALU36X18``, 4 per ``MULT36X36``, one per two
         ``MULT9X9`` (rounded up); the GW1NR-9 has 20
  bram   BSRAM blocks (18 kbit): ``SP``/``SPX9``, ``SDP*``, ``DP*``, ``pROM*``
  spram  0
  ====== ==============================================================================

  The wide-function muxes (``MUX2_LUT5``..``MUX2_LUT8``) sit beside the LUTs in each slice
  and use no LUT site; they are in ``cells`` and ``utilisation``, not in ``lut4``.
* :func:`logic_area` gives the placed-logic figures the benchmarks compare (the project's
  area basis; see :mod:`fpga.metrics`):

  =========== ======================================= =====================================
  field       iCE40                                   ECP5
  =========== ======================================= =====================================
  logic_cells nextpnr utilisation ``ICESTORM_LC`` used None
              (one LUT4 + one FF + carry per cell:
              a design with more FFs than LUT4s
              costs its FFs)
  lut_equiv   None                                    ``lut4 + 2 * carry``: LUT4 cells + 2
                                                      per CCU2C + LUTRAM (4 per
                                                      ``TRELLIS_DPR16X4``). ``lut4`` already
                                                      holds the LUTRAM, so it is added once.
  slices      None                                    occupied SLICEs (2 LUT4 + 2 FF each)
                                                      of the placed design: nextpnr's
                                                      utilisation ``SLICE`` where it reports
                                                      one, else (nextpnr 0.11 reports only
                                                      ``TRELLIS_COMB``/``TRELLIS_FF``) the
                                                      SLICEs configured in nextpnr's
                                                      ``top.config``
  =========== ======================================= =====================================

  Gowin, on ECP5's basis (LUT sites): ``logic_cells`` None, ``slices`` None, ``lut_equiv``
  = ``lut4 + carry``: LUT4 cells (with the LUTs as RAM) + 1 per ``ALU`` (Gowin's carry
  cell is one LUT4 site in ALU mode, where ECP5's CCU2C is two).
* :func:`parse_nextpnr_report` reads ``nextpnr --report`` JSON: Fmax is the lowest
  achieved frequency over all clocks, the constraint is that clock's, and timing is met
  when every clock reaches its constraint. A design without clocks reports 0 MHz, met.
* :class:`SynthReport` round-trips through :meth:`SynthReport.to_dict` /
  :meth:`SynthReport.from_json`; paths in the dict are relative to the report's folder.
* :func:`format_table` and :func:`format_markdown` render reports as Markdown.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["SynthReport", "count_resources", "logic_area", "count_placed_slices",
           "parse_nextpnr_report", "format_table", "format_markdown"]


def count_resources(family: str, cells: dict[str, int]) -> dict[str, int]:
    """Map raw Yosys cell counts to ``lut4, lutram, ff, carry, dsp, bram, spram``."""
    def total(predicate):
        return sum(n for name, n in cells.items() if predicate(name))

    if family == "ice40":
        return dict(
            lut4=cells.get("SB_LUT4", 0), lutram=0,
            ff=total(lambda c: c.startswith("SB_DFF")),
            carry=cells.get("SB_CARRY", 0),
            dsp=cells.get("SB_MAC16", 0),
            bram=total(lambda c: c.startswith("SB_RAM40_4K")),
            spram=cells.get("SB_SPRAM256KA", 0),
        )
    if family == "ecp5":
        lutram = 4 * cells.get("TRELLIS_DPR16X4", 0)
        return dict(
            lut4=cells.get("LUT4", 0) + lutram, lutram=lutram,
            ff=cells.get("TRELLIS_FF", 0),
            carry=cells.get("CCU2C", 0),
            dsp=cells.get("MULT18X18D", 0),
            bram=cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
            spram=0,
        )
    if family == "gowin":
        lutram = sum(n * int(c[-1]) for c, n in cells.items()
                     if c.startswith(("RAM16S", "RAM16SDP")) and c[-1] in "124")
        dsp = (cells.get("MULT18X18", 0) + cells.get("MULTALU18X18", 0)
               + 2 * (cells.get("MULTADDALU18X18", 0) + cells.get("MULTALU36X18", 0))
               + 4 * cells.get("MULT36X36", 0) + -(-cells.get("MULT9X9", 0) // 2))
        return dict(
            lut4=sum(cells.get(f"LUT{k}", 0) for k in range(1, 5)) + lutram, lutram=lutram,
            ff=total(lambda c: c.startswith("DFF")),
            carry=cells.get("ALU", 0),
            dsp=dsp,
            bram=total(lambda c: c.startswith(("SP", "SDP", "DP", "pROM"))),
            spram=0,
        )
    raise ValueError(f"unknown FPGA family {family!r}; allowed: ecp5, gowin, ice40")


def count_placed_slices(config_text: str) -> int:
    """SLICEs (``SLICEA``..``SLICED`` of a tile) that an ECP5 ``--textcfg`` output configures."""
    used, tile = set(), None
    for line in config_text.splitlines():
        if line.startswith(".tile "):
            tile = line.split()[1]
        elif line.startswith(("enum: SLICE", "word: SLICE")):
            used.add((tile, line.split()[1].split(".", 1)[0]))
    return len(used)


def logic_area(family: str, cells: dict[str, int], utilisation: dict,
               placed_config: Path | None = None) -> dict[str, int | None]:
    """``logic_cells``, ``lut_equiv`` and ``slices`` of one run (see the module docstring).

    ``cells`` are the Yosys counts, ``utilisation`` nextpnr's report, ``placed_config`` the
    ECP5 ``top.config`` (slices are None when neither it nor a ``SLICE`` entry is there).
    """
    if family == "ice40":
        lc = utilisation.get("ICESTORM_LC", {}).get("used")
        return dict(logic_cells=None if lc is None else int(lc), lut_equiv=None, slices=None)
    if family == "ecp5":
        res = count_resources(family, cells)
        slices = utilisation.get("SLICE", {}).get("used")
        if slices is None and placed_config is not None and Path(placed_config).is_file():
            slices = count_placed_slices(Path(placed_config).read_text())
        return dict(logic_cells=None, lut_equiv=res["lut4"] + 2 * res["carry"],
                    slices=None if slices is None else int(slices))
    if family == "gowin":
        res = count_resources(family, cells)
        return dict(logic_cells=None, lut_equiv=res["lut4"] + res["carry"], slices=None)
    raise ValueError(f"unknown FPGA family {family!r}; allowed: ecp5, gowin, ice40")


def parse_nextpnr_report(path: Path) -> tuple[float, float, bool, dict]:
    """Return ``(fmax_mhz, constraint_mhz, timing_met, utilisation)`` from a nextpnr report."""
    data = json.loads(Path(path).read_text())
    clocks = data.get("fmax", {})
    utilisation = data.get("utilization", {})
    if not clocks:
        return 0.0, 0.0, True, utilisation
    worst = min(clocks.values(), key=lambda c: c["achieved"])
    met = all(c["achieved"] >= c["constraint"] for c in clocks.values())
    return float(worst["achieved"]), float(worst["constraint"]), met, utilisation


@dataclass
class SynthReport:
    """What one synthesis run measured (see the module docstring for the counting rules).

    ``bitstream``, ``report_json`` and ``report_md`` are absolute paths in memory and
    relative to the report's folder in :meth:`to_dict`. ``wrapper`` describes the
    :class:`~fpga.wrapper.PinWrapper` shell whose cells are included in the counts
    (``None`` when the design was placed unwrapped).
    """

    design: str
    target: str
    lut4: int
    ff: int
    carry: int
    dsp: int
    bram: int
    spram: int
    lutram: int
    cells: dict[str, int]
    fmax_mhz: float
    constraint_mhz: float
    timing_met: bool
    utilisation: dict
    bitstream: Path
    report_json: Path
    report_md: Path
    step_seconds: dict[str, float]
    tool_versions: dict[str, str]
    seed: int = 1
    wrapper: dict | None = field(default=None)
    notes: list = field(default_factory=list)   # e.g. "multipliers were mapped to fabric"
    logic_cells: int | None = None   # iCE40: nextpnr ICESTORM_LC used (see logic_area)
    lut_equiv: int | None = None     # ECP5 LUT4 + 2 CCU2C + LUTRAM; Gowin LUT4 + ALU
    slices: int | None = None        # ECP5: occupied SLICEs
    provenance: dict | None = None   # lowbit.rtl_gen.provenance of the design (None: unknown)
    netlist_from: str | None = None  # folder of the run whose Yosys netlist was placed (same top.v)

    _PATHS = ("bitstream", "report_json", "report_md")

    def to_dict(self) -> dict:
        """JSON-ready dict; paths relative to the folder of ``report_json``."""
        base = Path(self.report_json).parent
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self._PATHS:
                value = os.path.relpath(value, base)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict, base: Path) -> "SynthReport":
        """Inverse of :meth:`to_dict`; ``base`` is the folder the paths are relative to."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in cls._PATHS:
            kwargs[name] = (Path(base) / kwargs[name]).resolve()
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: Path) -> "SynthReport":
        """Load a ``report.json`` written by :func:`fpga.flow.synthesize`."""
        path = Path(path).resolve()
        return cls.from_dict(json.loads(path.read_text()), path.parent)


def _display_path(path: Path, base: Path | None) -> str:
    base = Path.cwd() if base is None else Path(base)
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def format_table(reports: list[SynthReport], *, base: Path | None = None) -> str:
    """A Markdown table with one row per report: counts, Fmax vs. constraint, bitstream.

    Bitstream paths are shown relative to ``base`` (default: the working directory) when
    they lie below it, else absolute.
    """
    head = ["design", "target", "logic area", "LUT4", "FF", "carry", "DSP", "BRAM", "Fmax MHz",
            "constraint MHz", "met?", "bitstream"]
    align = "llrrrrrrrrcl"
    rows = [head]
    for r in reports:
        if r.logic_cells is not None:
            area = f"{r.logic_cells} LC"
        elif r.lut_equiv is not None:
            area = f"{r.lut_equiv} LUT-eq" + (f" ({r.slices} SLICE)" if r.slices is not None else "")
        else:
            area = "-"
        rows.append([r.design, r.target, area, str(r.lut4), str(r.ff), str(r.carry), str(r.dsp),
                     str(r.bram) + (f" (+{r.spram} SPRAM)" if r.spram else ""),
                     f"{r.fmax_mhz:.1f}", f"{r.constraint_mhz:g}",
                     "yes" if r.timing_met else "**no**", _display_path(r.bitstream, base)])
    widths = [max(3, *(len(row[i]) for row in rows)) for i in range(len(head))]
    rule = {"l": lambda w: "-" * w, "r": lambda w: "-" * (w - 1) + ":",
            "c": lambda w: ":" + "-" * (w - 2) + ":"}
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(rows[0], widths)) + " |",
             "| " + " | ".join(rule[a](w) for a, w in zip(align, widths)) + " |"]
    for row in rows[1:]:
        cells = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_markdown(report: SynthReport, *, device: str = "", package: str = "") -> str:
    """The ``report.md`` of one run: summary table, utilisation, steps, tools, wrapper note."""
    out = [f"# {report.design} on {report.target}", ""]
    if device:
        out += [f"Device {device}" + (f", package {package}" if package else "")
                + f"; nextpnr seed {report.seed}.", ""]
    out += [format_table([report], base=Path(report.report_md).parent)]
    if report.lutram:
        out += [f"LUT4 includes {report.lutram} LUT4 used as distributed RAM.", ""]
    if report.wrapper:
        out += [report.wrapper.get("note", ""), ""]
    out += [f"Note: {note}" for note in report.notes] + ([""] if report.notes else [])
    out += ["## Utilisation (nextpnr)", "", "| bel | used | available |", "|---|---:|---:|"]
    for bel, u in sorted(report.utilisation.items()):
        if u.get("used"):
            out.append(f"| {bel} | {u['used']} | {u['available']} |")
    out += ["", "## Steps", "", "| step | seconds |", "|---|---:|"]
    out += [f"| {step} | {sec:.2f} |" for step, sec in report.step_seconds.items()]
    out += ["", "## Tools", ""]
    out += [f"- {step}: {version}" for step, version in report.tool_versions.items()]
    return "\n".join(out) + "\n"
