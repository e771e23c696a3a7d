"""The package's import graph, read with ``ast``: no circles, no upward imports, few importers.

Every import statement counts, wherever it stands: module level, inside a function (a lazy
import still ties two modules together) and under ``if TYPE_CHECKING:`` (a type-only circle
is still a circle to a reader). A package's ``__init__`` counts only where it is named
(``from ..sip import LOOPBACK``), not as the implicit parent of every submodule imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_sipflow"

#: Lower rank = lower layer; a module may import its own layer or lower ones only.
RANKS = {"errors": 0, "sip": 0, "media": 0.5, "format": 1, "agent": 1, "core": 2,
         "engine": 3, "reporting": 4, "api": 5, "glue": 6, "fixtures": 7, "testing": 7, "plugin": 8,
         "schema": 8,
         "__init__": 8}
NO_PYTEST = ("engine", "core", "agent", "sip", "format", "media")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (or package), dotted
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path) -> list[Import]:
    """Every import in the package under ``root``, relative ones resolved to dotted names."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    found: list[Import] = []
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(name, a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    found.append(Import(name, sub if sub in files else module, node.lineno))
    return found


def circles(found: list[Import], package: str) -> list[list[str]]:
    """Import circles among the package's own modules (Tarjan's strongly connected parts)."""
    edges: dict[str, set[str]] = {}
    for imp in found:
        if imp.target.split(".")[0] == package and imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                result.append(sorted(part))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def where(imp: Import) -> str:
    return f"{imp.source}:{imp.line} imports {imp.target}"


FOUND = imports_of(PACKAGE)


def test_the_package_has_no_import_circle() -> None:
    assert circles(FOUND, "pytest_sipflow") == []


def test_the_checker_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    pkg = tmp_path / "demo"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .inner import b\n")
    (pkg / "inner" / "b.py").write_text("def f():\n    from ..c import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from . import a\nx = 1\n")
    (pkg / "d.py").write_text("from . import c\n")  # reaches the circle, is not part of it
    assert circles(imports_of(pkg), "demo") == [["demo.a", "demo.c", "demo.inner.b"]]
    (pkg / "c.py").write_text("x = 1\n")
    assert circles(imports_of(pkg), "demo") == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = [where(i) for i in FOUND if i.target.startswith("pytest_sipflow.")
              and layer(i.target) != layer(i.source)
              and RANKS[layer(i.target)] >= RANKS[layer(i.source)]]
    assert upward == []


@pytest.mark.parametrize("room", NO_PYTEST)
def test_the_lower_layers_import_nothing_of_pytest(room: str) -> None:
    bad = [where(i) for i in FOUND if layer(i.source) == room
           and i.target.split(".")[0] in ("pytest", "_pytest", "pluggy")]
    assert bad == []


def test_the_engine_imports_nothing_of_reporting() -> None:
    assert [where(i) for i in FOUND if layer(i.source) == "engine"
            and layer(i.target) == "reporting" and i.target.startswith("pytest_sipflow")] == []


def test_only_the_agents_pjsua2_side_imports_pjsua2() -> None:
    allowed = ("pytest_sipflow.agent.pj",)
    importers = {i.source for i in FOUND if i.target.split(".")[0] == "pjsua2"}
    assert importers and all(m.startswith(allowed) for m in importers), importers


def test_every_room_has_a_rank() -> None:
    rooms = {layer(module_name(PACKAGE, p)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(RANKS), rooms - set(RANKS)
