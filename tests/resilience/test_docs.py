"""The docs of issue 20 name real commands and options (quick): every `chaoslab` line in docs/resilience.md and in
the README's command list for history, compare, chaos random and gameday --repeat is a command the CLI has, and
every option it shows is one that command takes (its --help lists it)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from chaoslab.lab.paths import repo_root

pytestmark = pytest.mark.quick

COMMAND = re.compile(r"(?:^|\s|`)(?:\.venv/bin/)?chaoslab ((?:[a-z-]+ ?)+)(.*)")


def _lines() -> list[tuple[tuple[str, ...], list[str]]]:
    found = []
    for doc in ("docs/resilience.md", "README.md", "chaos/README.md"):
        for line in (repo_root() / doc).read_text().splitlines():
            if not any(word in line for word in ("history", "compare", "random", "--repeat", "--seed")):
                continue
            match = COMMAND.search(line)
            if match is None:
                continue
            words = match.group(1).split()
            if words[0] not in ("history", "compare", "chaos", "gameday"):
                continue  # another command (`chaoslab topologies compare` is not `chaoslab compare`)
            path = tuple(w for w in words[:2] if w in ("history", "compare", "chaos", "random", "gameday", "run"))
            if not path or path[0] not in ("history", "compare", "chaos", "gameday"):
                continue
            found.append((path, re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", line)))
    return found


def test_the_resilience_docs_name_real_commands_and_options() -> None:
    lines = _lines()
    assert {p for p, _ in lines} >= {("history",), ("compare",), ("chaos", "random"), ("gameday",)}, lines
    helps: dict[tuple[str, ...], str] = {}
    for path, options in lines:
        if path not in helps:
            done = subprocess.run([sys.executable, "-m", "chaoslab.cli", *path, "--help"], capture_output=True,
                                  text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
            assert done.returncode == 0, (path, done.stderr)
            helps[path] = done.stdout
        for option in options:
            assert option in helps[path], (path, option)
