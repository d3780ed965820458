"""Design-point loading, validation messages and the CLI's error behaviour."""
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.scripts.cli import main
from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import load_design, parse_design
from lowbit.rtl_gen.generate import generate

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((REPO / "hw").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_catalogue_design_loads_and_round_trips(path, tmp_path):
    config = load_design(path)
    assert config.name == path.stem
    copy = tmp_path / "copy.yaml"
    copy.write_text(config.to_yaml())
    again = load_design(copy)
    assert again.params() == config.params() and again.targets == config.targets


@pytest.mark.parametrize("text,field,allowed", [
    ("family: nope\nname: x\n", "family", "expected one of"),
    ("family: activation\nname: 9x\nparams: {function: gelu, input: Q4.11}\n", "name", "identifier"),
    ("family: activation\nname: x\nparams: {function: tanh, input: Q4.11}\n", "params.function", "gelu, silu"),
    ("family: activation\nname: x\nparams: {function: gelu, input: Q4.11, order: 9}\n", "params.order", "from 1 to 3"),
    ("family: activation\nname: x\nparams: {function: gelu, input: UQ4.11}\n", "params.input", "signed"),
    ("family: activation\nname: x\nparams: {function: gelu, input: Q4.11, method: table}\n", "params.method", "at most 12 bits"),
    ("family: activation\nname: x\nparams: {function: gelu, input: Q4.11, segmnts: 3}\n", "params.segmnts", "unknown parameter"),
    ("family: activation\nname: x\nparams: {function: gelu}\n", "params.input", "required"),
    ("family: activation\nname: x\ntargets: [ice40-lp1k]\nparams: {function: gelu, input: Q3.4}\n", "targets", "ice40-up5k"),
    ("family: activation\nname: [x\n", "line", "not valid YAML"),
])
def test_bad_design_gives_one_line_naming_file_and_field(tmp_path, text, field, allowed):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_design(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and field in message and allowed in message


def test_cli_bad_yaml_exits_nonzero_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: activation\nname: bad\nparams: {function: gelu, input: Q4.x}\n")
    proc = subprocess.run([sys.executable, "-m", "lowbit.scripts.cli", "generate", str(bad),
                           "--build-dir", str(tmp_path / "build")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "params.input" in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "build").exists()


def test_cli_params_without_yaml_and_overrides(tmp_path, capsys):
    build = tmp_path / "build"
    assert main(["generate", "--family", "activation", "--name", "cli_silu", "-p", "function=silu",
                 "-p", "input=Q2.5", "-p", "method=table", "--build-dir", str(build)]) == 0
    written = load_design(build / "cli_silu" / "config.yaml")
    assert written.function == "silu" and str(written.input) == "Q2.5"
    assert main(["generate", "gelu_q3_4", "-p", "order=2", "--name", "g2", "--build-dir", str(build)]) == 0
    assert load_design(build / "g2" / "config.yaml").order == 2
    assert main(["generate", "gelu_q3_4", "-p", "order=7", "--build-dir", str(build)]) == 2
    assert "params.order" in capsys.readouterr().err


def test_same_config_gives_byte_identical_verilog(tmp_path):
    config = load_design(catalogue()["gelu_q4_11"])
    first = generate(config, tmp_path / "a").verilog.read_bytes()
    second = generate(config, tmp_path / "b").verilog.read_bytes()
    assert first == second and b"module gelu_q4_11" in first


def test_cli_help_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "lowbit.scripts.cli", "--help"], capture_output=True, text=True)
    for command in ("list", "generate", "sim", "synth", "flow"):
        assert command in proc.stdout
