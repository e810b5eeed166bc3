"""`chaoslab load` and `scale-test` refuse bad command lines clearly: a message, exit 2, never a traceback.

In-process through typer's runner (the refusals happen before anything starts), plus one real `chaoslab` process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chaoslab.cli import app

pytestmark = pytest.mark.quick

Cli = Callable[..., subprocess.CompletedProcess[str]]


def invoke(*args: Any) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


def refused(done: tuple[int, str] | subprocess.CompletedProcess[str], *needles: str) -> None:
    if isinstance(done, subprocess.CompletedProcess):
        code, output = done.returncode, done.stdout + done.stderr
    else:
        code, output = done
    assert code == 2, (code, output)
    text = " ".join(output.split())  # rich may wrap lines
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def test_unknown_scenario_lists_the_known_ones(chaoslab_cli: Cli, tmp_path: Path) -> None:
    # the real command, once: its entry point, its exit code, its stderr
    refused(chaoslab_cli("load", "stress", "--state-dir", tmp_path),
            "unknown scenario 'stress'", "known: smoke, ramp, step, spike, soak, rate")


def test_no_lab_and_no_host(tmp_path: Path) -> None:
    refused(invoke("load", "smoke", "--state-dir", tmp_path / "nothing"),
            "no lab is running", "--host URL")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["smoke", "--users", "0"], "users must be at least 1"),
        (["smoke", "--duration", "soon"], "bad duration 'soon'"),
        (["smoke", "--duration", "0s"], "longer than zero"),
        (["ramp", "--rate", "5"], "rate scenario only"),
        (["rate", "--rate", "-3"], "rate must be positive"),
        (["smoke", "--workers", "-1"], "--workers must be 0 or more"),
        (["smoke", "--threshold", "p95=fast"], "is not a number"),
        (["smoke", "--mix", "everything"], "unknown mix"),
        (["smoke", "--host", "localhost:18000"], "bad --host"),
    ],
)
def test_bad_numbers_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                 message: str) -> None:
    monkeypatch.chdir(tmp_path)
    refused(invoke("load", *args, "--state-dir", tmp_path / "state"), message)
    assert not (tmp_path / "runs").exists()


def test_a_non_number_is_refused_by_the_parser() -> None:
    refused(invoke("load", "smoke", "--users", "many"), "Invalid value for '--users'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["payments", "--replicas", "2,3"], "include 1"),
        (["payments", "--replicas", "1,x"], "bad --replicas"),
        (["payments", "--duration", "never"], "bad duration"),
        (["payments", "--scenario", "stress"], "unknown scenario"),
        (["payments"], "no lab is running"),
        (["users"], "scale-test measures payments"),
    ],
)
def test_scale_test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                             message: str) -> None:
    monkeypatch.chdir(tmp_path)
    refused(invoke("scale-test", *args, "--state-dir", tmp_path / "state"), message)
    assert not (tmp_path / "runs").exists()  # a refused command leaves no run dir behind
