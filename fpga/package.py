"""IP package of a design point: Verilog, file list, FuseSoC core, example, report, manifest.

Contract
--------
:func:`package` writes into ``out_dir``, a new or empty folder or one lowbit made for a
package before (never a file or a user's folder, unless ``force``: then beside the user's
files, deleting none). Each file is written atomically; ``manifest.json`` goes last, so a
folder with a manifest holds a whole package. Synthesis reports whose provenance does not
match the design are refused, not shipped::

    rtl/<name>.v              the block (Amaranth -> Verilog, top module <name>)
    <name>.f                  file list (one path per line, relative to the package)
    <name>.core               FuseSoC CAPI2 core lowbit:blocks:<name>:<version>, targets
                              ``default`` (synthesis), ``lint`` (Verilator lint-only) and
                              ``example`` (the example top)
    example/<name>_example.v  an instantiation with every port wired and commented
    manifest.json             machine-readable: ports (Verilog names, direction, width,
                              signedness), clock and reset, every stream (any number in
                              and out) with its payload layout: the nested tree (structs,
                              arrays with element shape, count and each element's offset)
                              and the flat leaf fields (``data[0]``: lsb, width, signed;
                              :mod:`fpga.layout`), parameters, formats, latency and timing,
                              throughput (the family's text, per cycle and unit), files
                              with SHA-256
    axis/<name>_axis.v        (``interface="axis"``) the AXI4-Stream shell, module
                              ``<name>_axis`` (:mod:`fpga.axis`), FuseSoC target ``axis``
    report.md                 the same for people, plus every synthesis report found under
                              ``build/<name>/<target>/report.json`` (copied as
                              ``synth/<target>.json``)

Every fact comes from the design's config and the component's own signature
(``wiring.ComponentMetadata``); nothing is typed in twice.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml
from amaranth.back import verilog
from amaranth.lib import wiring

from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.generate import write_atomic
from lowbit.rtl_gen.outputs import claim_folder, is_ours
from lowbit.rtl_gen.provenance import provenance, stale_reason

from .axis import axis_interface, axis_verilog
from .layout import describe, leaves, stream_members

__all__ = ["package", "PACKAGE_VERSION"]

PACKAGE_VERSION = "0.1.0"

STREAM_PROTOCOL = (
    "valid/ready handshake (amaranth.lib.stream): a beat moves on a rising clock edge where "
    "valid and ready are both high; a producer holds valid and payload stable until the beat "
    "moves; ready may depend on nothing the consumer does not see; the payload is packed, "
    "first field (and array element 0) in the low bits, as manifest.json's streams[].layout "
    "and streams[].fields give it; 'last' marks the final beat of a vector.")

#: cycle figures a generator may state on its component (``latency``: input accepted ->
#: output valid; softmax: ``first_output_latency`` after ``passes`` x n beats of a row)
TIMING_KEYS = ("latency", "first_output_latency", "passes", "row_overhead")


def _ports(metadata: dict) -> list[dict]:
    out = []

    def walk(members):
        for member in members.values():
            if member["type"] == "port":
                out.append({"name": member["name"], "direction": member["dir"],
                            "width": member["width"], "signed": member["signed"]})
            else:
                walk(member["members"])

    walk(metadata["interface"]["members"])
    return out


def _streams(component) -> list[dict]:
    """Every stream member with its payload layout: the tree (:func:`fpga.layout.describe`)
    and the flat leaf fields (:func:`fpga.layout.leaves`) with their bit offsets."""
    result = []
    for name, direction, shape in stream_members(component):
        tree = describe(shape)
        fields = [{"name": leaf, "width": width, "signed": signed, "lsb": lsb}
                  for leaf, lsb, width, signed in leaves(shape)]
        result.append({"name": name, "direction": direction, "payload_width": tree["width"],
                       "valid": f"{name}__valid", "ready": f"{name}__ready",
                       "payload": f"{name}__payload", "layout": tree, "fields": fields})
    return result


def _timing(component) -> dict:
    """The cycle figures the generator states on the component (those it has of these)."""
    return {key: getattr(component, key) for key in TIMING_KEYS
            if isinstance(getattr(component, key, None), int)}


def _bits(lsb: int, width: int) -> str:
    return f"[{lsb + width - 1}:{lsb}]" if width > 1 else f"[{lsb}]"


def _example(name: str, ports: list[dict], streams: list[dict]) -> str:
    """A module with the block's own ports, every one wired through to the instance and
    commented: stream handshakes by role, each payload by its leaf fields."""
    notes = {"clk": "clock, rising edge", "rst": "synchronous reset, active high"}
    for s in streams:
        who = "you drive" if s["direction"] == "in" else "the block drives"
        notes[s["valid"]] = f"stream {s['name']} ({s['direction']}): valid, {who} it"
        notes[s["ready"]] = (f"stream {s['name']}: ready, "
                             f"{'the block drives' if s['direction'] == 'in' else 'you drive'} it")
        notes[s["payload"]] = f"stream {s['name']}: payload, {s['payload_width']} bits, low first:"
    lines = [f"// Example instantiation of {name} (generated by lowbit package).",
             "// Drive clk/rst from your design; streams follow the valid/ready handshake",
             "// described in manifest.json (a beat moves when valid and ready are both high).",
             f"module {name}_example ("]
    by_payload = {s["payload"]: s for s in streams}
    decls = []
    for k, p in enumerate(ports):
        kind = "input" if p["direction"] == "in" else "output"
        sign = " signed" if p["signed"] else ""
        rng = f" [{p['width'] - 1}:0]" if p["width"] > 1 else ""
        comma = "," if k < len(ports) - 1 else ""
        note = notes.get(p["name"], "")
        decls.append(f"    {kind} wire{sign}{rng} {p['name']}{comma}"
                     + (f"  // {note}" if note else ""))
        if p["name"] in by_payload:
            decls += [f"    //   {_bits(f['lsb'], f['width'])} {f['name']}"
                      f"{' (signed)' if f['signed'] else ''}"
                      for f in by_payload[p["name"]]["fields"]]
    lines += decls
    lines.append(");")
    conns = ",\n".join(f"        .{p['name']}({p['name']})" for p in ports)
    lines += [f"    {name} u_{name} (", conns, "    );", "endmodule", ""]
    return "\n".join(lines)


def _core(name: str, description: str, interface: str = "native") -> dict:
    core = {
        "name": f"lowbit:blocks:{name}:{PACKAGE_VERSION}",
        "description": description,
        "filesets": {
            "rtl": {"files": [f"rtl/{name}.v"], "file_type": "verilogSource"},
            "example": {"files": [f"example/{name}_example.v"], "file_type": "verilogSource"},
        },
        "targets": {
            "default": {"filesets": ["rtl"], "toplevel": name},
            "lint": {"default_tool": "verilator", "filesets": ["rtl"], "toplevel": name,
                     "tools": {"verilator": {"mode": "lint-only",
                                             "verilator_options": ["-Wno-fatal"]}}},
            "example": {"filesets": ["rtl", "example"], "toplevel": f"{name}_example"},
        },
    }
    if interface == "axis":
        core["filesets"]["axis"] = {"files": [f"axis/{name}_axis.v"],
                                    "file_type": "verilogSource"}
        core["targets"]["axis"] = {"filesets": ["rtl", "axis"], "toplevel": f"{name}_axis"}
    return core


def _formats(config) -> dict:
    """The parameters that are fixed-point formats, with their widths and ranges."""
    return {key: {"format": str(fmt), "width": fmt.width, "signed": fmt.signed,
                  "min_int": fmt.min_int, "max_int": fmt.max_int, "lsb": fmt.lsb}
            for key, fmt in config.formats().items()}


def _layout_text(tree: dict) -> str:
    """One line for people: ``{data [31:0]: 4 x s8, last [32]: u1}``."""
    kind = tree["kind"]
    if kind == "scalar":
        return f"{'s' if tree['signed'] else 'u'}{tree['width']}"
    if kind == "array":
        return f"{tree['count']} x {_layout_text(tree['element'])}"
    inner = ", ".join(f"{f['name']} {_bits(f['lsb'], f['layout']['width'])}: "
                      f"{_layout_text(f['layout'])}"
                      for f in tree["fields"])
    return ("union " if kind == "union" else "") + "{" + inner + "}"


def _report(manifest: dict, synth: dict) -> str:
    m = manifest
    out = [f"# {m['design']} ({m['family']})", "", m.get("description") or "", "",
           "## Parameters", "", "| parameter | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in m["parameters"].items()]
    latency = (f"{m['latency_cycles']} cycles (input accepted -> output valid)"
               if m["latency_cycles"] is not None else "depends on the input (see timing)")
    timing = ", ".join(f"{k} {v}" for k, v in m["timing"].items())
    out += ["", f"Latency: {latency}; timing: {timing or 'none stated'}. Throughput: "
            f"{m['throughput_per_cycle']:g} {m['throughput_unit']} at full rate "
            f"({m['throughput']}).", ""]
    if m["formats"]:
        out += ["## Formats", "", "| parameter | format | width | signed |", "|---|---|---:|---|"]
        out += [f"| {k} | {f['format']} | {f['width']} | {f['signed']} |"
                for k, f in m["formats"].items()]
        out.append("")
    out += ["## Ports", "", "| port | dir | width | signed |", "|---|---|---:|---|"]
    out += [f"| {p['name']} | {p['direction']} | {p['width']} | {p['signed']} |"
            for p in m["ports"]]
    out += ["", f"Clock `{m['clock']['name']}` (rising edge), reset `{m['reset']['name']}` "
            "(synchronous, active high).", "", "## Streams", "", STREAM_PROTOCOL, ""]
    for s in m["streams"]:
        out.append(f"- `{s['name']}` ({s['direction']}, {s['payload_width']} bits): "
                   f"{_layout_text(s['layout'])}; {len(s['fields'])} leaf fields in "
                   "manifest.json")
    out += ["", "## Synthesis", ""]
    if not synth:
        out.append(f"No synthesis report yet: run `lowbit synth {m['design']}`.")
    for target, r in synth.items():
        out.append(f"- {target}: {r.get('lut4')} LUT4, {r.get('ff')} FF, {r.get('dsp')} DSP, "
                   f"{r.get('bram')} BRAM, Fmax {r.get('fmax_mhz', 0):.1f} MHz "
                   f"(constraint {r.get('constraint_mhz')} MHz, met: {r.get('timing_met')}); "
                   f"see synth/{target}.json")
    return "\n".join(out) + "\n"


INTERFACES = ("native", "axis")


def package(config, out_dir: Path, *, build_root: Path = Path("build"), force: bool = False,
            interface: str = "native") -> dict:
    """Write the IP package of ``config`` into ``out_dir``; returns the manifest.

    ``out_dir`` must be new, empty or a package folder lowbit made (its marker file); a file
    or a user's folder is refused (``force``: write beside the user's files, delete none).
    Synthesis reports under ``build_root/<name>/<target>/`` are shipped only when their
    provenance matches the design as it is built now; a stale one is refused, one line.
    ``interface="axis"`` adds the AXI4-Stream shell ``axis/<name>_axis.v`` (:mod:`fpga.axis`),
    its FuseSoC target ``axis`` and ``interfaces.axis`` in the manifest.
    """
    if interface not in INTERFACES:
        raise ValueError(f"unknown interface {interface!r}; allowed: {', '.join(INTERFACES)}")
    from lowbit.rtl_gen.generate import build_component

    name = config.name
    component = build_component(config)
    text = verilog.convert(component, name=name, emit_src=False)   # elaborates it
    metadata = wiring.ComponentMetadata(component).as_json()
    # the implicit sync domain's clock and reset come first (Amaranth adds them as ports)
    ports = [{"name": n, "direction": "in", "width": 1, "signed": False}
             for n in ("clk", "rst") if re.search(rf"^\s*input\s+(wire\s+)?{n}\s*;", text, re.M)]
    ports += _ports(metadata)
    latency = getattr(component, "latency", None)
    streams = _streams(component)
    synth, reports = _fresh_reports(config, Path(build_root))
    out = claim_folder(Path(out_dir).resolve(), option="--out", force=force, what="IP package")
    files = {f"rtl/{name}.v": text,
             f"example/{name}_example.v": _example(name, ports, streams),
             f"{name}.f": f"rtl/{name}.v\n",
             "config.yaml": config.to_yaml()}
    core = _core(name, getattr(config, "description", "") or f"lowbit {config.family} block",
                 interface)
    interfaces = {}
    if interface == "axis":
        has_rst = any(p["name"] == "rst" for p in ports)
        files[f"axis/{name}_axis.v"] = axis_verilog(name, streams, has_reset=has_rst)
        interfaces["axis"] = {"toplevel": f"{name}_axis", "file": f"axis/{name}_axis.v",
                              "clock": "aclk", "reset": {"name": "aresetn", "active": "low",
                                                         "kind": "synchronous"},
                              "ports": axis_interface(streams)}
    files[f"{name}.core"] = "CAPI=2:\n" + yaml.safe_dump(core, sort_keys=False)
    files.update(reports)
    manifest = {
        "design": name, "family": config.family, "version": PACKAGE_VERSION,
        "description": getattr(config, "description", ""),
        "toplevel": name, "parameters": config.params(),
        "formats": _formats(config),
        "clock": {"name": "clk", "edge": "rising"},
        "reset": {"name": "rst", "kind": "synchronous", "active": "high"},
        "ports": ports, "streams": streams, "stream_protocol": STREAM_PROTOCOL,
        "latency_cycles": latency,
        "timing": _timing(component),
        "throughput": config.package_throughput,
        "throughput_per_cycle": config.throughput_per_cycle(),
        "throughput_unit": config.throughput_unit(),
        **({"interfaces": interfaces} if interfaces else {}),
        "provenance": provenance(config),
        "synthesis": {t: {k: r.get(k) for k in ("lut4", "ff", "carry", "dsp", "bram",
                                                "fmax_mhz", "constraint_mhz",
                                                "timing_met")}
                      for t, r in synth.items()},
    }
    files["report.md"] = _report(manifest, synth)
    manifest["files"] = {path: hashlib.sha256(body.encode()).hexdigest()
                         for path, body in sorted(files.items())}
    _write_package(out, files, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _fresh_reports(config, build_root: Path) -> tuple[dict, dict]:
    """``(target -> report dict, package path -> report text)`` of the design's synthesis
    reports; a report of other parameters or sources is refused with one line."""
    synth, files = {}, {}
    for report in sorted(build_root.glob(f"{config.name}/*/report.json")):
        text = report.read_text()
        data = json.loads(text)
        if data.get("design") != config.name or "target" not in data or "lut4" not in data:
            continue
        reason = stale_reason(data.get("provenance"), config)
        if reason:
            raise ConfigError(str(report), "provenance", f"not shipped: {reason}; refresh it with "
                              f"`lowbit synth {config.source if config.source.endswith('.yaml') else config.name}"
                              f" --target {data['target']}` (add --build-dir {build_root} if not build/)")
        synth[data["target"]] = data
        files[f"synth/{data['target']}.json"] = text
    return synth, files


def _write_package(out: Path, files: dict[str, str], manifest: str) -> None:
    """Each file atomically; ``manifest.json`` removed first and written last, so a package
    folder with a manifest is complete. Files an earlier package of lowbit's listed and this
    one does not are removed; nothing else is."""
    old_manifest = out / "manifest.json"
    listed = []
    if is_ours(out) and old_manifest.is_file():
        try:
            listed = list(json.loads(old_manifest.read_text()).get("files", {}))
        except ValueError:
            listed = []
    old_manifest.unlink(missing_ok=True)
    for path in listed:
        if path not in files and "/../" not in f"/{path}/":
            (out / path).unlink(missing_ok=True)
    for path, body in files.items():
        write_atomic(out / path, body)
    write_atomic(old_manifest, manifest)
