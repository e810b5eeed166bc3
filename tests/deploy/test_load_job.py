"""The Locust command lines of the deployments are ones loadtests/locustfile.py accepts: the k8s Job's runs for
real here for a few seconds against a closed port (the requests fail, so the scenario's thresholds fail it)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from deploy_k8s import of_kind
from deploy_support import REPO, compose_resolved

pytestmark = pytest.mark.quick


def _with(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def test_k8s_locust_job_command_runs_a_scenario(tmp_path: Path) -> None:
    (job,) = of_kind("overlays/load", "Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["locust", "-f", "/app/loadtests/locustfile.py"] and "--scenario" in command
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        args = _with(_with(_with(command[3:], "--host", closed), "--duration", "2s"), "--peak-users", "1")
        done = subprocess.run([str(REPO / ".venv" / "bin" / "locust"), "-f", str(REPO / "loadtests" / "locustfile.py"),
                               *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert "unrecognized arguments" not in output and done.returncode != 2, output[-2000:]
    assert done.returncode == 1 and "Connection refused" in output, output[-2000:]


def test_compose_locust_uses_the_same_locustfile_and_gateway() -> None:
    services = compose_resolved()["services"]
    for name in ("locust-master", "locust-worker"):
        command = services[name]["command"]
        assert command[:3] == ["locust", "-f", "/app/loadtests/locustfile.py"], name
        assert services[name]["environment"]["BOOTSTRAP_ADMIN"] == services["auth"]["environment"]["BOOTSTRAP_ADMIN"]
    master = services["locust-master"]["command"]
    assert master[master.index("--host") + 1] == "http://gateway:8080"
