"""Parameters declared once: README's tables and ``lowbit params`` come from the declarations."""
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.rtl_gen.families import FAMILIES
from lowbit.scripts import readme_params
from lowbit.scripts.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_readme_parameter_tables_match_the_declarations():
    text = (REPO / "README.md").read_text()
    assert readme_params.render(text) == text, \
        "README.md's parameter tables are stale: run python -m lowbit.scripts.readme_params --write"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lowbit_params_lists_every_parameter(family, capsys):
    assert main(["params", family]) == 0
    out = capsys.readouterr().out
    for param in FAMILIES[family].declared():
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [param.name])
        assert param.kind in line and param.doc in line and param.default_text() in line


def test_lowbit_params_unknown_family_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "lowbit.scripts.cli", "params", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope' is not a block family" in lines[0] and "activation" in lines[0]
