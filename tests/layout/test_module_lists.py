"""The lists of modules people read are the modules that exist: every package docstring of chaoslab/ and
loadtests/ lists its modules and subpackages, one line each ("- name.py  what it holds"), and docs/design.md's
layout block lists every module of both packages. A module added, moved or removed without its line fails here
(issue 17 found `chaos/__init__.py` listing modules that did not exist, and a dozen that existed missing)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chaoslab", "loadtests")
ENTRY = re.compile(r"^- (\S+?(?:\.py|/))\s+\S")
DESCRIPTION_COLUMN = 26  # design.md's layout block: names before it, what they hold from it on


def _packages() -> list[Path]:
    return sorted(init.parent for package in PACKAGES for init in (ROOT / package).rglob("__init__.py"))


def _members(package: Path) -> set[str]:
    """A package's modules (but __init__.py) and subpackages, as its docstring names them."""
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    return modules | {f"{p.parent.name}/" for p in package.glob("*/__init__.py")}


def _listed_in_docstring(package: Path) -> list[str]:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    return [m.group(1) for line in docstring.splitlines() if (m := ENTRY.match(line))]


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_docstring_lists_its_modules(package: Path) -> None:
    listed = _listed_in_docstring(package)
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert set(listed) == _members(package), (
        f"missing: {sorted(_members(package) - set(listed))}; gone: {sorted(set(listed) - _members(package))}")


def _listed_in_design() -> set[str]:
    """Every path docs/design.md's layout block names under chaoslab/ and loadtests/, from its indentation."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## Layout\n```\n", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, folder) of the entries the current line is nested in
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= DESCRIPTION_COLUMN:
            continue  # a description's next line
        name = line.split()[0]
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "".join(folder for _, folder in folders) + name
        if path.split("/", 1)[0] not in PACKAGES:
            continue
        if name.endswith("/"):
            folders.append((indent, name))
        listed.add(path)
    return listed


def test_the_design_layout_lists_every_module() -> None:
    exists = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py":
                exists.add(str(path.relative_to(ROOT)))
        exists |= {f"{p.parent.relative_to(ROOT)}/" for p in (ROOT / package).rglob("__init__.py")}
    listed = _listed_in_design()
    assert listed == exists, f"missing: {sorted(exists - listed)}; gone: {sorted(listed - exists)}"


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    """A line's name is read as the parser above reads it: a nested module is found, a description is not."""
    assert ENTRY.match("- lease.py          the lab's lease").group(1) == "lease.py"  # type: ignore[union-attr]
    assert ENTRY.match("- dashboards/      Grafana dashboards").group(1) == "dashboards/"  # type: ignore[union-attr]
    assert ENTRY.match("- net: blackhole (DROP: a connection hangs)") is None
    listed = _listed_in_design()
    assert {"chaoslab/lab/lease.py", "chaoslab/observability/dashboards/spec.py", "loadtests/shapes.py",
            "chaoslab/errors.py", "chaoslab/lab/"} <= listed
    assert not any("kit" in path or path.startswith("services") for path in listed)
