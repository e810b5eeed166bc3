"""`chaoslab chaos random` and `gameday --repeat` refuse what they cannot do before touching a lab (quick): a bad
duration or range (exit 2), no lab (exit 1, with how to start one), a repeat count below one; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.lab import run_chaoslab

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(("args", "code", "message"), [
    (["chaos", "random", "--duration", "10x"], 2, "bad --duration"),
    (["chaos", "random", "--gap", "10s"], 2, "expected MIN-MAX"),
    (["chaos", "random", "--fault-duration", "5s-x"], 2, "bad --fault-duration"),
    (["chaos", "random", "--duration", "1m"], 1, "no lab in"),
    (["gameday", "--repeat", "0"], 2, "--repeat"),
])
def test_bad_input_is_refused_with_a_message(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = run_chaoslab(*args, "--state-dir", tmp_path / "nolab")
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "nolab" / "history.sqlite").exists()
