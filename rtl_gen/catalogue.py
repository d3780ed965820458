"""The catalogue of design points: the YAML files in ``hw/``."""
from __future__ import annotations

from pathlib import Path

#: the design the CLI builds when none is named
DEFAULT_DESIGN = "gelu_q4_11"


def catalogue_dir() -> Path:
    """``hw/`` of the current folder, else the one beside this package (editable install)."""
    here = Path.cwd() / "hw"
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / "hw"


def catalogue() -> dict[str, Path]:
    """Design name -> YAML file, for every design in :func:`catalogue_dir`."""
    return {p.stem: p for p in sorted(catalogue_dir().glob("*.yaml"))}
