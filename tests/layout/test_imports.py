"""The package's shape, checked from the source: no import circle anywhere in chaoslab/ or services/ (function-
level imports included: a circle hidden in a function is still one), library code never imports the CLI, and
the services never import the lab's tooling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chaoslab", "services", "loadtests")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "_pb2" not in path.name:
                found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, at any level of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    assert len(graph) > 100
    assert "chaoslab.cli.console" in graph["chaoslab.cli.lab"]  # from chaoslab.cli.console import ...
    assert "services.contract" in graph["chaoslab.lab.ports"]


def test_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_a_circle_is_found() -> None:
    """The check above can fail: a circle through a function-level import is reported."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_library_code_never_imports_the_cli() -> None:
    offenders = {name: sorted(i for i in deps if i == "chaoslab.cli" or i.startswith("chaoslab.cli."))
                 for name, deps in _graph().items() if name != "chaoslab.cli" and not name.startswith("chaoslab.cli.")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_services_do_not_import_the_lab_tooling() -> None:
    offenders = {name: sorted(i for i in deps if i.startswith("chaoslab"))
                 for name, deps in _graph().items() if name.startswith("services")}
    assert {k: v for k, v in offenders.items() if v} == {}
