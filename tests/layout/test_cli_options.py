"""The shared options are shared: every command that acts on a lab takes --state-dir (the root help promises it;
`chaos validate` refused it), the commands that only read or write files say so by not taking it, and every
command that changes a lab can wait for the lab's lease."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer.main

from chaoslab.cli import app
from support.lab import run_chaoslab

pytestmark = pytest.mark.quick

FILE_ONLY = {"chaos list", "chaos judge", "chaos new"}  # experiments and journals on disk; no lab
OWN_LABS = {"topologies compare"}  # starts and stops labs of its own under its run dir, never the user's
CHANGES_THE_LAB = {"scale", "env", "down", "faults", "chaos run", "chaos random", "gameday", "coverage", "scale-test"}


def _commands(command: Any, path: tuple[str, ...] = ()) -> dict[str, set[str]]:
    if hasattr(command, "commands"):
        found: dict[str, set[str]] = {}
        for name, sub in command.commands.items():
            found |= _commands(sub, (*path, name))
        return found
    return {" ".join(path): {o for p in command.params for o in getattr(p, "opts", [])}}


def test_every_command_that_acts_on_a_lab_takes_state_dir() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 18 and set(commands) >= FILE_ONLY
    without = {name for name, opts in commands.items() if "--state-dir" not in opts}
    assert without == FILE_ONLY | OWN_LABS


def test_every_command_that_changes_a_lab_can_wait_for_its_lease() -> None:
    commands = _commands(typer.main.get_command(app))
    assert {name for name, opts in commands.items() if "--wait" in opts} == CHANGES_THE_LAB


def test_locusts_own_variable_names_the_locustfile(tmp_path: Path) -> None:
    """LOCUST_LOCUSTFILE was silently ignored: it now names the file as --locustfile does (checked before any lab)."""
    (tmp_path / "broken_locustfile.py").write_text("from locust import HttpUser\nclass Shopper(HttpUser)\n")
    done = run_chaoslab("load", "smoke", "--state-dir", tmp_path / "no-lab", cwd=tmp_path,
                        env=dict(os.environ, LOCUST_LOCUSTFILE="broken_locustfile.py"))
    assert done.returncode == 2 and "broken_locustfile.py:2:" in done.stderr, done.stderr
    assert "not valid Python" in done.stderr and "Traceback" not in done.stderr
