"""Verilog generation: config -> component -> ``build/<name>/<name>.v`` (+ metadata).

Output is deterministic (the same config gives byte-identical Verilog) and written
atomically: a file appears under its final name only once it is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from .config import DesignConfig


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def build_component(config: DesignConfig) -> wiring.Component:
    """A fresh generator instance for ``config`` (its family names the generator)."""
    return config.component_class()(config)


def test_module(config: DesignConfig) -> str:
    """The cocotb test module of ``config``'s family bench."""
    return config.bench


@dataclass
class Generated:
    verilog: Path
    metadata: Path
    config: Path
    toplevel: str
    sha256: str
    latency: int | None


def generate(config: DesignConfig, build_root: Path = Path("build")) -> Generated:
    """Write ``<name>.v``, ``<name>.json`` (port metadata) and ``config.yaml`` under
    ``build_root/<name>/``."""
    component = build_component(config)
    text = verilog.convert(component, name=config.name, emit_src=False)
    out = Path(build_root) / config.name
    meta = {
        "design": config.name,
        "family": config.family,
        "params": config.params(),
        "latency": getattr(component, "latency", None),
        "component": wiring.ComponentMetadata(component).as_json(),
    }
    write_atomic(out / f"{config.name}.v", text)
    write_atomic(out / f"{config.name}.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_atomic(out / "config.yaml", config.to_yaml())
    return Generated(out / f"{config.name}.v", out / f"{config.name}.json", out / "config.yaml",
                     config.name, hashlib.sha256(text.encode()).hexdigest(),
                     getattr(component, "latency", None))
