"""Shared helper of the benchmark scripts: replace one marked section of BENCHMARKS.md.

Each script owns the section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
and rewrites only that, atomically, so the scripts can run independently.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# lowbit benchmarks\n\nEvery section below is written by the script it names; rerun that command to regenerate it.\n"


def update_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
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


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
