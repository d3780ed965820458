"""Every kind of bad input or failed step gives one line on stderr and its documented exit
status (scripts/cli_errors.py), writes nothing half-done and touches no user file."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lowbit.scripts import cli
from lowbit.scripts.cli import main
from lowbit.scripts.cli_errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowbit: "), err
    return err[0]


@pytest.mark.parametrize("argv,says", [
    (["synth", "gelu_q3_4", "--freq", "0"], "--freq"),
    (["synth", "gelu_q3_4", "--freq", "-5"], "--freq"),
    (["synth", "gelu_q3_4", "--freq", "nan"], "--freq"),
    (["run", "gelu_q3_4", "--count", "-1"], "--count"),
    (["sweep", "x.yaml", "--workers", "0"], "--workers"),
    (["bogus"], "invalid choice"),
    (["synth", "gelu_q3_4", "--target", "ice40-lp1k"], "ice40-up5k"),
    (["generate", "gelu_q3_4", "-p", "order=[1"], "-p order=[1"),
    (["generate", "gelu_q3_4", "-p", "order"], "key=value"),
    (["generate", "no_such_design"], "neither a YAML file nor a design"),
    (["report", "no/such/results.json"], "no such results file"),
    (["run", "gelu_q3_4", "--port", "/dev/lowbit-no-such-port"], "--port"),
    # a design whose largest vector outgrows the iCEBreaker's host-link buffers, before any build
    (["run", "bitserial_both_w8a8", "--sim"], "bytes of the host link"),
    # the Tang Nano 9K top has no PLL: its 27 MHz oscillator only
    (["synth", "gelu_q3_4", "--board", "tangnano9k", "--freq", "50"],
     "'--freq': 50 MHz is not allowed on tangnano9k"),
])
def test_bad_options_give_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.chdir(tmp_path)          # nothing may appear here
    try:
        status = main([*argv, "--build-dir", str(tmp_path / "build")] if argv[0] in
                      ("generate", "synth") else argv)
    except SystemExit as exc:            # argparse's own errors leave through exit()
        status = exc.code
    assert status == EXIT_BAD_INPUT
    assert says in one_line(capsys)
    assert not (tmp_path / "build").exists()


def test_a_design_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"family: activation\nname: x\nparams: {function: gelu, input: \"Q3.4\xff\"}\n")
    assert main(["generate", str(bad), "--build-dir", str(tmp_path / "build")]) == EXIT_BAD_INPUT
    line = one_line(capsys)
    assert str(bad) in line and "UTF-8" in line


def test_a_file_where_a_folder_belongs_is_one_line_and_left_alone(tmp_path, capsys):
    build = tmp_path / "build"
    build.write_text("mine")
    assert main(["generate", "gelu_q3_4", "--build-dir", str(build)]) == EXIT_BAD_INPUT
    assert "--build-dir" in one_line(capsys) and build.read_text() == "mine"
    build.unlink()
    build.mkdir()
    (build / "gelu_q3_4").write_text("mine too")
    assert main(["generate", "gelu_q3_4", "--build-dir", str(build)]) == EXIT_FAILED
    assert "needs a folder" in one_line(capsys) and (build / "gelu_q3_4").read_text() == "mine too"


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys, ctrl_c):
    def interrupted(config, args):
        ctrl_c()   # the real signal, at a point the test controls

    monkeypatch.setattr(cli, "do_generate", interrupted)
    assert main(["generate", "gelu_q3_4", "--build-dir", str(tmp_path / "b")]) == EXIT_INTERRUPTED
    assert one_line(capsys) == "lowbit: interrupted"


def test_missed_timing_fails_only_under_strict(tmp_path, capsys):
    argv = ["synth", "gelu_table_q3_4", "--target", "ice40-up5k", "--freq", "900",
            "--build-dir", str(tmp_path / "b")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--strict"]) == EXIT_FAILED
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "timing not met" in line and "ice40-up5k" in line and "of 900 MHz" in line


def test_the_installed_command_reports_exit_codes_in_its_help():
    proc = subprocess.run([sys.executable, "-m", "lowbit.scripts.cli", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "130 interrupted" in proc.stdout
