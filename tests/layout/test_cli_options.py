"""The shared options are shared: every command that acts on a lab takes --state-dir (the root help promises it;
`chaos validate` refused it), the commands that only read or write files say so by not taking it, and every
command that changes a lab can wait for the lab's lease."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

from chaoslab.cli import app

pytestmark = pytest.mark.quick

FILE_ONLY = {"chaos list", "chaos judge", "chaos new"}  # experiments and journals on disk; no lab
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
    assert without == FILE_ONLY


def test_every_command_that_changes_a_lab_can_wait_for_its_lease() -> None:
    commands = _commands(typer.main.get_command(app))
    assert {name for name, opts in commands.items() if "--wait" in opts} == CHANGES_THE_LAB
