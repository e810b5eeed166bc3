"""The webhook receiver as a real process, finding a lab's processes by their marker, and reading logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from chaoslab.errors import LabError
from chaoslab.lab.lock import lab_lock
from chaoslab.lab.logs import follow, tail
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.procs import end_processes, lab_processes
from chaoslab.lab.programs import LAB_MARKER
from support.waiting import eventually

pytestmark = pytest.mark.quick


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, out = _free_port(), tmp_path / "alerts" / "notifications.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "chaoslab.lab.webhook", "--port", str(port), "--out", str(out)])
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, "the webhook receiver exited"
        try:
            return requests.get(f"{url}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        eventually(up, 30, 0.05)
        yield url, out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_webhook_records_and_serves_notifications(webhook: tuple[str, Path]) -> None:
    url, out = webhook
    assert requests.get(f"{url}/notifications", timeout=5).json()["notifications"] == []
    first = {"receiver": "lab", "status": "firing", "alerts": [{"labels": {"alertname": "A"}}]}
    before = time.time()
    assert requests.post(url, json=first, timeout=5).status_code == 200  # Alertmanager posts to the URL itself
    answer = requests.get(f"{url}/notifications", params={"since": 0}, timeout=5).json()
    assert len(answer["notifications"]) == 1
    got = answer["notifications"][0]
    assert got["alerts"] == first["alerts"] and before <= got["received_at"] <= answer["now"]
    second = {"receiver": "lab", "status": "resolved", "alerts": [{"labels": {"alertname": "A"}}]}
    assert requests.post(f"{url}/alerts", json=second, timeout=5).status_code == 200  # any path
    newer = requests.get(f"{url}/notifications", params={"since": answer["now"]}, timeout=5).json()
    assert [n["status"] for n in newer["notifications"]] == ["resolved"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [n["status"] for n in lines] == ["firing", "resolved"]
    assert requests.post(url, data=b"not json", timeout=5).status_code == 400
    assert requests.get(f"{url}/notifications", params={"since": "yesterday"}, timeout=5).status_code == 400


def test_lab_processes_are_found_by_their_marker_and_ended(tmp_path: Path) -> None:
    env = {**os.environ, LAB_MARKER: str(tmp_path)}
    # one in a session of its own, one whose child ignores SIGTERM: both are found, both are ended
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    procs = [
        subprocess.Popen(["sleep", "300"], env=env, start_new_session=True),
        subprocess.Popen([sys.executable, "-c", stubborn], env=env),
    ]
    other = subprocess.Popen(["sleep", "300"], env={**os.environ, LAB_MARKER: str(tmp_path / "other")})
    try:
        eventually(lambda: len(lab_processes(tmp_path)) == 2, 30, 0.05)
        found = {p.pid for p in lab_processes(tmp_path)}
        assert found == {p.pid for p in procs}
        assert end_processes(lab_processes(tmp_path), grace_s=1.0) == []
        for proc in procs:
            proc.wait(timeout=10)
        assert lab_processes(tmp_path) == []
        assert psutil.pid_exists(other.pid) and other.poll() is None
    finally:
        for proc in [*procs, other]:
            proc.kill()
            proc.wait()


def test_logs_tail_and_follow(tmp_path: Path) -> None:
    one, two = tmp_path / "a.log", tmp_path / "b.log"
    one.write_text("".join(f"line {i}\n" for i in range(1, 10001)))
    assert tail(one, 3) == ["line 9998", "line 9999", "line 10000"]
    assert tail(two, 3) == []  # not there (yet)
    stream = follow([("a", one), ("b", two)], stop_after_s=10)
    with open(one, "a") as out:
        out.write("fresh\npart")
    assert next(stream) == ("a", "fresh")
    two.write_text("born late\n")
    assert next(stream) == ("b", "born late")
    with open(one, "a") as out:
        out.write("ial\n")
    assert next(stream) == ("a", "partial")


def test_one_command_at_a_time_changes_a_lab(tmp_path: Path) -> None:
    paths = LabPaths.of(tmp_path / "state")
    with lab_lock(paths, wait_s=1):
        code = ("import sys\nfrom chaoslab.lab.lock import lab_lock\nfrom chaoslab.lab.paths import LabPaths\n"
                "with lab_lock(LabPaths.of(sys.argv[1]), wait_s=0.5):\n    pass\n")
        other = subprocess.run([sys.executable, "-c", code, str(paths.state)], capture_output=True, text=True,
                               check=False)
        assert other.returncode != 0 and "another chaoslab command" in other.stderr, other.stderr
    with lab_lock(paths, wait_s=1):  # released: free again
        pass
    missing = LabPaths.of(tmp_path / "never")
    with lab_lock(missing, create=False):
        pass
    assert not missing.state.exists()
    with pytest.raises(LabError), lab_lock(paths, wait_s=0.3), lab_lock(paths, wait_s=0.3):
        pass
