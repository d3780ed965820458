"""Issue 12's timing goals, and the nextpnr critical-path reader that explains a missed one.

:data:`FMAX_GOALS` is the one table of Fmax goals (MHz, median of nextpnr seeds 1-3) per
block class and target; :func:`goal_class` names the class of a design point of ``hw/``
(its family, and for the activation unit its method and input width). Every benchmark
script that sets a design beside its goal takes it from here.

:func:`critical_path` reads the clock-to-clock critical path of a ``nextpnr.log``: total,
logic and routing delay, the registers it starts and ends at, and the generator functions
(``module.function``) its cells were defined in, in path order.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

#: Fmax goals per block class: {class: {target: MHz}} (issue 12's table)
FMAX_GOALS = {
    "gemv": {"ice40-up5k": 80, "ecp5-25k": 150},             # bit-serial and both GEMV families
    "activation table": {"ice40-up5k": 135, "ecp5-25k": 200},
    "activation poly 8-bit": {"ice40-up5k": 130, "ecp5-25k": 200},
    "activation poly 16-bit": {"ice40-up5k": 100, "ecp5-25k": 180},
    "softmax": {"ice40-up5k": 90, "ecp5-25k": 150},
    "board top": {"ice40-up5k": 80, "ecp5-25k": 150},        # at the board clock
    "other block": {"ice40-up5k": 80, "ecp5-25k": 150},      # the title: every block
}

#: what each class covers, as the goal table states it
CLASS_TEXT = {
    "gemv": "bit-serial and both GEMV families",
    "activation table": "GELU/SiLU table",
    "activation poly 8-bit": "GELU/SiLU poly (and I-BERT), inputs of at most 8 bits",
    "activation poly 16-bit": "GELU/SiLU poly (and I-BERT), wider inputs",
    "softmax": "softmax",
    "other block": "Hadamard rotation (the issue's title: every block)",
}


def goal_class(cfg) -> str:
    """The :data:`FMAX_GOALS` class of a design config."""
    family = cfg.family
    if family in ("bitserial", "lutgemv", "gemv_mult"):
        return "gemv"
    if family == "activation":
        if cfg.method == "table":
            return "activation table"
        return "activation poly 8-bit" if cfg.input.width <= 8 else "activation poly 16-bit"
    if family == "softmax":
        return "softmax"
    return "other block"


def _enclosing_functions(path: Path) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of every function in a source file."""
    tree = ast.parse(path.read_text())
    return [(n.lineno, n.end_lineno, n.name) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def critical_path(log: Path) -> dict:
    """The clock-to-clock critical path of a nextpnr.log: total, logic and routing delay
    (ns), start and end cell, and the generator functions (``module.function``) of the
    ``Defined in`` lines it passes through, in path order."""
    lines = log.read_text(errors="replace").splitlines()
    start = next(i for i, ln in enumerate(lines) if "Critical path report for clock" in ln)
    cells, places, total = [], [], 0.0  # the path's cells, generator functions, delay
    for ln in lines[start + 2:]:
        m = re.match(r"Info:\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+Source (\S+)", ln)
        if m:
            cells.append(m.group(4))
            total = float(m.group(3))
        m = re.match(r"Info:\s+(/\S+/(?:rtl_gen|fpga)/(\w+)\.py):(\d+)", ln)
        if m:
            path, module, line = Path(m.group(1)), m.group(2), int(m.group(3))
            name = module
            if path.is_file():
                inside = [(hi - lo, fn) for lo, hi, fn in _enclosing_functions(path) if lo <= line <= hi]
                if inside:
                    name = f"{module}.{min(inside)[1]}"
            if not places or places[-1] != name:
                places.append(name)
        m = re.match(r"Info: ([\d.]+) ns logic, ([\d.]+) ns routing", ln)
        if m:
            return dict(total=total, logic=float(m.group(1)), routing=float(m.group(2)),
                        start=_cell(cells[0]), end=_cell(cells[-1]), through=places)
    raise ValueError(f"{log}: no critical path report")


def _cell(name: str) -> str:
    """A placed cell's name without the mapper's suffixes: the design register it starts from."""
    name = name.removeprefix("dut.")
    return re.split(r"_SB_|_TRELLIS_|_DFF|_LUT4|\$", name)[0] or name


def clock_critical_path(log: Path) -> dict:
    """:func:`critical_path` of the design clock's report: nextpnr also reports a clock it
    makes for DSP blocks without registers (``$PACKER_GND_NET``), which is skipped; the
    design clock's part is written beside the log as ``nextpnr.clock.log``."""
    lines = log.read_text(errors="replace").splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if "Critical path report for clock" in ln and "PACKER" not in ln]
    clock_log = log.with_name("nextpnr.clock.log")
    clock_log.write_text("".join(lines[starts[-1]:] if starts else lines))
    return critical_path(clock_log)
