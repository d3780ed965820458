"""The import graph stays one-way and acyclic (docs/ARCHITECTURE.md, "Layers").

    golden_models  <-  rtl_gen  <-  testbenches, fpga  <-  scripts

``testbenches`` may import ``fpga`` (the host driver), never the other way; nothing imports
``scripts``; ``golden_models`` needs nothing but NumPy and the standard library; every project
import goes through the one import name ``lowbit``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = {"golden_models": 0, "rtl_gen": 1, "testbenches": 2, "fpga": 2, "scripts": 3}
#: imports allowed between the two parts of one layer: (importer, imported)
SIDEWAYS = {("testbenches", "fpga")}
GOLDEN_THIRD_PARTY = {"numpy"}


def module_names(root: Path) -> dict[str, Path]:
    """``lowbit.<part>.<module>`` -> file, for every Python file of every part."""
    mods = {}
    for part in LAYERS:
        for path in sorted((root / part).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            mods[".".join(("lowbit", *rel))] = path
    return mods


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, absolute (relative imports resolved), with its line."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def check_layers(root: Path) -> list[str]:
    """One line per broken rule: upward or sideways import, generic top-level name, a golden
    model needing a third-party package, an import cycle between project modules."""
    mods = module_names(root)
    problems, edges = [], {}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for name, path in mods.items():
        part = name.split(".")[1]
        where = f"{path.relative_to(root)}"
        for target, line in imports_of(name, path):
            top = target.split(".")[0]
            if top in LAYERS:
                problems.append(f"{where}:{line}: imports '{target}'; write lowbit.{target}")
                continue
            if part == "golden_models" and top not in stdlib | GOLDEN_THIRD_PARTY | {"lowbit"}:
                problems.append(f"{where}:{line}: golden models import numpy only, not '{target}'")
            parts = target.split(".")
            hit = next((".".join(parts[:k]) for k in range(len(parts), 1, -1)
                        if ".".join(parts[:k]) in mods), None)
            if hit is None or hit == name:
                continue
            other = hit.split(".")[1]
            edges.setdefault(name, set()).add(hit)
            if other != part and (LAYERS[other] > LAYERS[part] or
                                  (LAYERS[other] == LAYERS[part] and (part, other) not in SIDEWAYS)):
                problems.append(f"{where}:{line}: {part} may not import {other} ('{target}')")
    problems += [f"import cycle among: {', '.join(cycle)}" for cycle in _cycles(edges)]
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_project_keeps_its_layers():
    problems = check_layers(REPO)
    assert not problems, "\n".join(problems)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for part in LAYERS:
        (tmp_path / part).mkdir()
        (tmp_path / part / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize("files,expect", [
    ({"golden_models/m.py": "from lowbit.rtl_gen import x\n"}, "golden_models may not import rtl_gen"),
    ({"fpga/f.py": "from lowbit.testbenches import tb\n"}, "fpga may not import testbenches"),
    ({"rtl_gen/c.py": "import lowbit.scripts.cli\n"}, "rtl_gen may not import scripts"),
    ({"rtl_gen/c.py": "from golden_models import m\n"}, "write lowbit.golden_models"),
    ({"golden_models/m.py": "import yaml\n"}, "numpy only"),
    ({"rtl_gen/a.py": "from . import b\n", "rtl_gen/b.py": "from .a import x\n"},
     "import cycle among: lowbit.rtl_gen.a, lowbit.rtl_gen.b"),
])
def test_the_check_finds_each_kind_of_break(tmp_path, files, expect):
    problems = check_layers(_tree(tmp_path, files))
    assert any(expect in p for p in problems), problems


def test_allowed_imports_pass_the_check(tmp_path):
    files = {"testbenches/t.py": "from lowbit.fpga import host\nfrom lowbit.rtl_gen import c\n",
             "scripts/s.py": "from lowbit.testbenches import t\nimport numpy\n",
             "golden_models/m.py": "import numpy as np\nimport math\n"}
    assert check_layers(_tree(tmp_path, files)) == []
