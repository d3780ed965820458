"""The netlist breakdowns of ``scripts/bench_bitserial.py``: the flip-flops and the LUT4 /
carry cells of a bit-serial array's Yosys netlist (seed 1's ``top.json``) by the part of the
generator they belong to, found by the names of the registers (the flattened net names the
generator gives them: ``p<n>_<k>_sum<level>``, ``acc_...``, ``total_...``, ...)."""
from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["FF_PARTS", "LUT_PARTS", "register_row", "logic_row"]

#: flip-flop groups of the register breakdown: (column, test on the flattened net name)
FF_PARTS = [
    # (the wrapper's captured inputs drive the ports: ECP5 netlists keep the port names)
    ("pin wrapper", lambda n: n.startswith(("chain", "captured", "node$", "i__payload",
                                            "w__payload", "x__payload", "s__payload",
                                            "cmd__payload"))),
    ("port heads", lambda n: re.match(r"(w|x|s|cmd)_head", n)),
    ("adder tree", lambda n: re.match(r"(p\d+_\d+|valid|first|shift|end|final|sign|zbit)_sum\d+", n)),
    ("zero point / sign", lambda n: re.match(r"\w+_(zgate|zero|sign)$", n)),
    ("accumulators", lambda n: n.startswith(("acc_", "psum_", "addend_"))),
    ("hand-off, totals, y", lambda n: n.startswith(("done_", "dscale_", "total_", "tot_", "y__",
                                                     "copy_", "ready_copy", "mul", "prod",
                                                     "lo_mul", "hi_mul", "value_prod",
                                                     "index_", "last_", "ring_r",
                                                     "scale_ring"))),
]


_FF = ("SB_DFF", "TRELLIS_FF")
_LUT = ("SB_LUT4", "LUT4")
_CARRY = ("SB_CARRY", "CCU2C")


def _netlist(result):
    netlist = json.loads((Path(result.report.report_json).parent / "top.json").read_text())
    top = netlist["modules"]["top"]
    names = {}
    for net, info in top["netnames"].items():
        if not info.get("hide_name"):
            for bit in info["bits"]:
                names.setdefault(bit, []).append(net.removeprefix("dut."))
    return top["cells"], names


def register_row(result) -> list:
    """Flip-flops of a result's Yosys netlist (seed 1's top.json) by the part they belong to
    (the first of ``FF_PARTS`` any name of its output net matches; the rest is control),
    beside the logic area."""
    cells, names = _netlist(result)
    counts, other = {column: 0 for column, _ in FF_PARTS}, 0
    for cell, info in cells.items():
        if not info["type"].startswith(_FF):
            continue
        aliases = names.get(info["connections"]["Q"][0], [cell])
        column = next((c for c, test in FF_PARTS if any(test(n) for n in aliases)), None)
        if column is None:
            other += 1
        else:
            counts[column] += 1
    total = sum(counts.values()) + other
    area = result.area
    return [f"{area.value} {area.unit}", result.report.lut4, total,
            *[f"{v} ({100 * v / total:.0f} %)" for v in counts.values()], other]


#: LUT groups of the logic breakdown: (column, test on the name of a register the LUT's
#: combinational cone feeds); a LUT counts in the first column whose registers it feeds
LUT_PARTS = [
    ("leaves", lambda n: re.match(r"p\d+_\d+_sum0$", n)),
    ("adder tree", lambda n: re.match(r"p\d+_\d+_sum[1-9]\d*$", n)),
    ("zero point / sign", lambda n: re.match(r"p\d+_\d+_(zgate|zero|sign)$", n)
     or re.match(r"q\d+_\d+_zgate$", n)),
    ("accumulators", lambda n: n.startswith("acc_")),
    ("hand-off, rescale, totals, y", lambda n: n.startswith((
        "done_", "dscale_", "total_", "y__", "lo_mul", "hi_mul", "value_prod"))),
    ("port heads", lambda n: re.match(r"(w|x|s|cmd)_(head|ready)", n)),
]
def logic_row(result) -> list:
    """LUT4 and carry cells (SB_CARRY / CCU2C) of seed 1's netlist by the part whose
    registers their combinational cone feeds (``LUT_PARTS``; the rest: control, the pin
    wrapper, the DSP inputs), as ``LUT4 / carry`` per column."""
    cells, names = _netlist(result)
    driver = {}
    for cell, info in cells.items():
        for port, bits in info["connections"].items():
            if info.get("port_directions", {}).get(port) == "output":
                driver.update((b, cell) for b in bits if isinstance(b, int))
    seen, counts = set(), []
    for column, test in LUT_PARTS:
        stack = [info["connections"].get("D", info["connections"].get("DI"))[0]
                 for info in cells.values()
                 if info["type"].startswith(_FF)
                 and any(test(n) for n in names.get(info["connections"]["Q"][0], []))]
        part = set()
        while stack:
            cell = driver.get(stack.pop())
            if cell is None or cell in seen or cells[cell]["type"].startswith(_FF):
                continue
            seen.add(cell)
            part.add(cell)
            info = cells[cell]
            stack.extend(b for port, bits in info["connections"].items()
                         if info.get("port_directions", {}).get(port) == "input"
                         for b in bits if isinstance(b, int))
        counts.append(part)
    counts.append(set(cells) - seen)
    return [f"{sum(cells[c]['type'] in _LUT for c in part)} / "
            f"{sum(cells[c]['type'] in _CARRY for c in part)}" for part in counts]
