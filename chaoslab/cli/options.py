"""The options several commands share, declared once (the way pip-tools keeps its options in one module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chaoslab.lab.paths import DEFAULT_RUNS_DIR, DEFAULT_STATE_DIR
from chaoslab.lab.ports import DEFAULT_BASE_PORT

STATE_DIR = Path(DEFAULT_STATE_DIR)
RUNS_DIR = DEFAULT_RUNS_DIR
BASE_PORT = DEFAULT_BASE_PORT

StateDir = Annotated[Path, typer.Option(
    "--state-dir", envvar="CHAOSLAB_STATE_DIR", show_envvar=True,
    help="The lab's state dir: configs, databases, logs, spans, alerts.")]
BasePort = Annotated[int, typer.Option(
    "--base-port", envvar="CHAOSLAB_BASE_PORT", show_envvar=True,
    help="First port of the lab; every other port is an offset from it.")]
StartBasePort = Annotated[int | None, typer.Option(
    "--base-port", envvar="CHAOSLAB_BASE_PORT", show_envvar=True,
    help="Base port when a lab has to be started (default: the state dir's last lab's, else 18000).")]
RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where run directories go.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of tables.")]
Wait = Annotated[float, typer.Option(
    "--wait", metavar="SECONDS", help="When another command holds the lab's lease (chaoslab status shows who), wait "
                                      "up to this long for it; default: refuse at once (exit 4).")]
