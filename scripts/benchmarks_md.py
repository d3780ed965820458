"""Shared helper of the benchmark scripts: replace one marked section of BENCHMARKS.md.

Each script owns the section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
and rewrites only that, atomically and under a lock (``build/.benchmarks.lock``), so the
scripts can run independently and at the same time.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# lowbit benchmarks\n\nEvery section below is written by the script it names; rerun that command to regenerate it.\n"


def update_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    lock = path.parent / "build" / ".benchmarks.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:   # two scripts writing at once lose no section
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            _replace_section(name, body, path)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_section(name: str, body: str, path: Path) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".BENCHMARKS.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_section(name: str, path: Path = BENCHMARKS) -> str | None:
    """The body of section ``name`` as it stands in BENCHMARKS.md (None if absent)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


#: the sentence every benchmark section puts above its synthesis tables
SYNTH_BASIS = ("Area on each family's basis (BENCHMARKS.md, *Method*): iCE40 logic cells = "
               "nextpnr's ICESTORM_LC count, ECP5 LUT-equivalents = LUT4 + 2 x CCU2C + LUTRAM "
               "(occupied SLICEs beside); DSP and BRAM beside every figure; Fmax = median "
               "(min-max) of nextpnr seeds 1, 2, 3, resources from seed 1's run; all figures "
               "from fresh runs of this benchmark.")


def calibration_section(targets, build: Path = Path("build/calibration"), *, jobs: int = 2) -> str:
    """The calibration table every benchmark run appends: the 8x8 -> 24-bit MAC per target."""
    from lowbit.fpga.metrics import SYNTH_COLUMNS, calibration_rows, synth_cells

    rows = []
    for target in targets:
        for result in calibration_rows(target, Path(build), jobs=jobs):
            print(f"{result.name} {target}: {synth_cells(result)}", flush=True)
            rows.append([result.name, target, *synth_cells(result)])
    return "\n".join([
        "\n### Calibration (this run)\n",
        "The plain registered 8x8 signed MAC into a 24-bit accumulator of `fpga.metrics` "
        "(`calibration_mac`), placed in the same run: figures of different runs and machines "
        "compare as ratios to it. *(fabric)*: the same MAC with its multiplier mapped to logic.\n",
        markdown_table(["design", "target", *SYNTH_COLUMNS], rows)])
