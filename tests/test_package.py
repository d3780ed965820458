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
    manifest = package(config, out)
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
    package(config, out)
    (out / "synth").mkdir()
    (out / "synth" / "ice40-up5k.json").write_text("{}")        # listed by no manifest
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["old_only.v"] = "0"                        # a file an older package had
    (out / "old_only.v").write_text("module old; endmodule\n")
    (out / "manifest.json").write_text(json.dumps(manifest))
    package(config, out)
    assert not (out / "old_only.v").exists() and (out / "manifest.json").is_file()
    assert (out / "synth" / "ice40-up5k.json").read_text() == "{}"


def test_package_never_takes_a_users_file_or_folder(tmp_path, capsys):
    from lowbit.scripts.cli import main

    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    assert main(["package", "gelu_q3_4", "--out", str(user_file)]) == 2
    assert "is a file" in capsys.readouterr().err and user_file.read_text() == "mine"
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "stale.v").write_text("module stale; endmodule\n")
    assert main(["package", "gelu_q3_4", "--out", str(folder)]) == 2
    assert "--force" in capsys.readouterr().err and sorted(p.name for p in folder.iterdir()) == ["stale.v"]
    assert main(["package", "gelu_q3_4", "--out", str(folder), "--force"]) == 0
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

    assert main(["package", "gelu_q3_4", "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "gelu_q3_4.core").is_file()
    assert main(["run", "gelu_q3_4"]) == 2          # neither --port nor --sim
    assert "--port" in capsys.readouterr().err
