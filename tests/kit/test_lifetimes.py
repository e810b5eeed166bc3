"""A replica's lifetimes (services/kit/app.py) in a real process (tests/kit/lifetimes_service.py): entered in order
before the public port opens, closed in reverse after SIGTERM's drain let the request in flight finish; a close
that fails is logged and the others still close; a background task that crashes is started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from support.procs import REPO_ROOT, PortPool
from support.waiting import eventually

pytestmark = pytest.mark.services

PORTS = PortPool(23400, 23479)
SCRIPT = Path(__file__).with_name("lifetimes_service.py")
ORDERED = {"entered", "exited", "started", "slow request in flight", "stopping: draining in-flight requests",
           "request", "shutdown hook failed", "stopped"}


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _ready(admin_url: str) -> bool:
    try:
        return requests.get(f"{admin_url}/health/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_lifetimes_open_in_order_and_close_in_reverse_after_the_drain(tmp_path: Path) -> None:
    http_port, admin_port, nobody = PORTS.take(), PORTS.take(), PORTS.take()
    log = tmp_path / "replica.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "HTTP_PORT": str(http_port),
           "ADMIN_PORT": str(admin_port), "REPLICA_ID": "lifetimes-1", "SPANS_DIR": str(tmp_path / "spans"),
           "AUTH_URL": f"http://127.0.0.1:{nobody}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: _ready(f"http://127.0.0.1:{admin_port}"), 30, 0.1, "the replica ready")
        eventually(lambda: any(line.get("run") == 2 for line in _log(log)), 10, 0.1, "the background task restarted")
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(requests.get, f"http://127.0.0.1:{http_port}/slow", timeout=10)
            eventually(lambda: any(line["message"] == "slow request in flight" for line in _log(log)), 10, 0.05,
                       "the request in flight")
            proc.send_signal(signal.SIGTERM)
            answer = slow.result()
        assert (answer.status_code, answer.json()) == (200, {"done": True})  # drained, not cut off
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    lines = _log(log)
    steps = [(line["message"], line.get("lifetime") or line.get("hook") or line.get("path"))
             for line in lines if line["message"] in ORDERED]
    assert steps == [
        ("entered", "first"), ("entered", "second"), ("started", None),
        ("slow request in flight", None), ("stopping: draining in-flight requests", None), ("request", "/slow"),
        ("exited", "second"), ("shutdown hook failed", "failing_close"), ("exited", "first"), ("stopped", None),
    ], steps
    entered = [line for line in lines if line["message"] == "entered"]
    assert entered and not any(line["serving"] for line in entered)  # before the public port opened
    exited = [line for line in lines if line["message"] == "exited"]
    assert exited and all(line["draining"] for line in exited)
    crashes = [line for line in lines if line["message"] == "background task crashed; restarting"]
    assert [line["task"] for line in crashes] == ["crashes_once"]
