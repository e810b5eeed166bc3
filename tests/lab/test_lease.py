"""The lab's lease between real processes: a second command is refused naming the holder, or waits for it; a
holder killed with SIGKILL frees it at once; a process re-enters its own lease, and its children act under it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaoslab.lab import lease as leases
from support.waiting import eventually

pytestmark = pytest.mark.quick

HOLD = """
import sys, time
from chaoslab.lab.lease import lease
with lease(sys.argv[1], command="chaoslab chaos run kill-payments-replica"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(state: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={k: v for k, v in os.environ.items() if k != leases.HOLDER_ENV})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_command_is_refused_naming_the_holder(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 30)
    try:
        holder = leases.current(tmp_path)
        assert holder is not None and holder.pid == proc.pid
        assert holder.command == "chaoslab chaos run kill-payments-replica"
        with pytest.raises(leases.LabBusy) as refused, leases.lease(tmp_path):
            pytest.fail("the lease was given twice")
        assert refused.value.exit_code == leases.BUSY == 4
        assert f"pid {proc.pid}" in refused.value.message and "kill-payments-replica" in refused.value.message
    finally:
        proc.kill()
        proc.wait()


def test_waiting_gets_the_lease_when_the_holder_ends(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 1.5)
    told: list[leases.Holder | None] = []
    started = time.monotonic()
    with leases.lease(tmp_path, wait_s=30, on_wait=told.append) as mine:
        waited = time.monotonic() - started
        assert mine.pid == os.getpid() and leases.current(tmp_path) == mine
    proc.wait()
    assert waited > 0.5, "the lease was taken while the other process held it"
    assert len(told) == 1 and told[0] is not None and told[0].pid == proc.pid
    assert leases.current(tmp_path) is None and not (tmp_path / "lease.json").exists()


def test_a_killed_holder_frees_the_lease_at_once(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 60)
    assert leases.current(tmp_path) is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / "lease.json").read_text())["pid"] == proc.pid  # stale, left by the crash
    eventually(lambda: leases.current(tmp_path) is None, timeout_s=5, what="the lease to be free")
    with leases.lease(tmp_path, command="chaoslab gameday") as mine:
        assert json.loads((tmp_path / "lease.json").read_text())["pid"] == mine.pid == os.getpid()


def test_the_lease_is_reentrant_and_children_act_under_it(tmp_path: Path) -> None:
    with leases.lease(tmp_path, command="chaoslab gameday"):
        with leases.lease(tmp_path, command="chaos run inside the gameday"):
            assert leases.current(tmp_path).command == "chaoslab gameday"  # type: ignore[union-attr]
        child = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path), "0"], capture_output=True, text=True,
                               timeout=60)
        assert child.returncode == 0 and child.stdout.strip() == "held", child.stderr
        assert leases.current(tmp_path) is not None  # still ours after the inner block and the child
    assert leases.current(tmp_path) is None
    assert leases.HOLDER_ENV not in os.environ
