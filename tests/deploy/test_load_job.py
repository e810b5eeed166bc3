"""The Locust command lines of the deployments are ones loadtests/locustfile.py accepts: the k8s Job's runs for
real here for a few seconds against a closed port (the requests fail, so the scenario's thresholds fail it)."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
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


def _scraped(job: str) -> set[tuple[str, int]]:
    config = yaml.safe_load((REPO / "compose" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (scrape,) = [j for j in config["scrape_configs"] if j["job_name"] == job]
    targets = {(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for s in scrape.get("static_configs", [])
               for t in s["targets"]}
    return targets | {(n, sd["port"]) for sd in scrape.get("dns_sd_configs", []) for n in sd["names"]}


def test_the_documented_command_line_load_run_feeds_the_load_test_dashboard() -> None:
    """docs/deploy.md's headless Locust run must export its statistics where the compose Prometheus scrapes job
    `locust` (the Load test dashboard's only source): a `run` container answers to no service name (compose gives
    one-off containers no network alias), an `exec` runs in the service's own container; port 0 turns the
    exporter off (loadtests/exporter.py). Before, the documented run used both, and the dashboard stayed empty."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    commands = [c for c in re.findall(r"```sh\n(.*?)```", text, re.S) if "--headless" in c and "docker compose" in c]
    assert commands, "docs/deploy.md shows no headless compose run"
    for command in commands:
        words = shlex.split(command.replace("\\\n", " "))
        verb = next(w for w in words if w in ("run", "exec"))
        rest = words[words.index(verb) + 1:]
        named = rest[rest.index("--name") + 1] if "--name" in rest else None
        service = next(w for i, w in enumerate(rest) if not w.startswith("-") and rest[i - 1] != "--name")
        host = service if verb == "exec" else named
        port = int(words[words.index("--metrics-port") + 1]) if "--metrics-port" in words else 9646
        assert host and port and (host, port) in _scraped("locust"), \
            f"`{verb} {service}` with --metrics-port {port}: Prometheus scrapes {sorted(_scraped('locust'))}"
