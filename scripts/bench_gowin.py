"""Benchmark of the Gowin target: every activation and softmax design in hw/ placed on the
GW1NR-9 (Tang Nano 9K's GW1NR-LV9QN88PC6/I5) through the pip-only flow (yowasp Yosys
``synth_gowin``, yowasp nextpnr-himbaechel-gowin, Apycula's gowin_pack), with the
calibration MAC of :mod:`fpga.metrics`; rewrites the ``bench:gowin`` section of BENCHMARKS.md.

    python scripts/bench_gowin.py              # all of them, 2 processes (~10 min on 2 cores)
    python scripts/bench_gowin.py --jobs 1 --no-write gelu_q3_4   # one design, print only

Figures follow :mod:`fpga.metrics`: area in LUT-equivalents on ECP5's basis (LUT sites:
LUT4 + ALU + LUTs as RAM; Gowin's ALU carry cell is one LUT site, ECP5's CCU2C two), DSP in
18x18 multipliers and BSRAM blocks beside, Fmax the median (min-max) of nextpnr seeds 1, 2, 3
with resources from seed 1's run; every figure from a fresh run of this script.
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from lowbit.fpga.metrics import SEEDS, calibration_rows, format_fmax, synth_seeds
from lowbit.fpga.targets import get_target
from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import build_component
from lowbit.scripts.benchmarks_md import markdown_table, update_section

COMMAND = "python scripts/bench_gowin.py"
TARGET = "gowin-gw1nr9"
FAMILIES = ("activation", "softmax")
SECTION = "gowin"
COLUMNS = ["design", "family", "logic area (LUT-eq)", "LUT4", "ALU", "FF", "DSP (18x18)",
           "BSRAM", "Fmax MHz median (min-max)", "met 100 MHz?"]


def designs(names: list[str] | None = None) -> dict:
    """Name -> config of the activation and softmax designs in hw/ (or of ``names``)."""
    out = {}
    for name, path in catalogue().items():
        config = load_design(str(path))
        if config.family in FAMILIES and (not names or name in names):
            out[name] = config
    return out


def row(result, family: str) -> list[str]:
    r, a = result.report, result.area
    return [result.name, family, str(a.value), str(r.lut4), str(r.carry), str(r.ff), str(r.dsp),
            str(r.bram), format_fmax(result),
            "yes" if all(x.timing_met for x in result.reports) else "no"]


def section(rows: list[list[str]], calibration: list[list[str]], seconds: float) -> str:
    t = get_target(TARGET)
    return "\n".join([
        "## Gowin GW1NR-9 (Tang Nano 9K)",
        "",
        f"Written by `{COMMAND}` (regenerate with it; {seconds / 60:.0f} min here). Every "
        f"activation and softmax design in `hw/` on the {t.device} ({t.lut4:,} LUT4, "
        f"{t.dsp} 18x18 multipliers, {t.bram} BSRAM x 18 kbit) through the pip-only flow: "
        "yowasp Yosys `synth_gowin`, yowasp nextpnr-himbaechel-gowin (chip family GW1N-9C, "
        f"clock constraint {t.default_freq_mhz:g} MHz) and Apycula's `gowin_pack`, inside "
        "the pin shell (its few FFs and LUTs are in the counts).",
        "",
        "Area in LUT-equivalents on ECP5's basis, LUT sites: LUT4 + ALU (Gowin's carry cell, "
        "one LUT4 site in ALU mode; ECP5's CCU2C is two) + LUTs used as RAM; the wide "
        "multiplexers MUX2_LUT5..8 use no LUT site and are not counted. DSP in 18x18 "
        "multipliers (a MULT9X9 is half), BSRAM blocks beside. Fmax = median (min-max) of "
        f"nextpnr seeds {', '.join(map(str, SEEDS))}, resources from seed 1's run; all "
        "figures from fresh runs of this script.",
        "",
        markdown_table(COLUMNS, rows),
        "",
        "### Calibration (this run)",
        "",
        "The registered 8x8 signed MAC into a 24-bit accumulator of `fpga.metrics` "
        "(`calibration_mac`), placed in the same run; *(fabric)*: its multiplier in logic.",
        "",
        markdown_table(["design", "target", "logic area (LUT-eq)", "LUT4", "ALU", "FF",
                        "DSP (18x18)", "BSRAM", "Fmax MHz median (min-max)", "met?"],
                       calibration),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="designs (default: every activation and "
                                                 "softmax design in hw/)")
    parser.add_argument("--jobs", type=int, default=2, help="seed processes (default 2)")
    parser.add_argument("--build", type=Path, default=Path("build/bench_gowin"))
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args(argv)
    start = time.monotonic()
    rows = []
    for name, config in designs(args.names).items():
        result = synth_seeds(functools.partial(build_component, config), name, TARGET,
                             args.build / name, jobs=args.jobs)
        rows.append(row(result, config.family))
        print(" | ".join(rows[-1]), flush=True)
    calibration = []
    for result in calibration_rows(TARGET, args.build / "calibration", jobs=args.jobs):
        calibration.append(row(result, TARGET)[:1] + [TARGET] + row(result, TARGET)[2:])
        print(" | ".join(calibration[-1]), flush=True)
    body = section(rows, calibration, time.monotonic() - start)
    if args.no_write:
        print(body)
    else:
        update_section(SECTION, body)
        print(f"BENCHMARKS.md: section bench:{SECTION} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
