"""`chaoslab load` against the real native lab (the shared session fixture): seconds of load per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaoslab.clients.admin import AdminClient, replicas_of
from chaoslab.clients.prometheus import Prometheus, Sample

pytestmark = pytest.mark.lab

Cli = Callable[..., subprocess.CompletedProcess[str]]
REPORTS = ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "report.html", "summary.json",
           "command.txt", "locust.log")

# Short forms: enough users and seconds for every stage of the shape to run, and no more.
# soak runs in its short form in the Prometheus test below (distributed), to keep the suite short.
SHORT = {
    "smoke": ["--users", "3", "--duration", "14s"],
    "ramp": ["--users", "4", "--duration", "8s"],
    "step": ["--users", "4", "--duration", "10s"],
    "spike": ["--users", "5", "--duration", "9s"],
    "rate": ["--rate", "4", "--duration", "8s"],
}


def load(cli: Cli, lab: dict[str, Any], scenario: str, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("load", scenario, *args, "--run-dir", run_dir, "--state-dir", lab["state_dir"], timeout=180)


def summary_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("scenario", list(SHORT))
def test_every_scenario_runs_and_writes_its_reports(chaoslab_cli: Cli, lab: dict[str, Any], tmp_path: Path,
                                                    scenario: str) -> None:
    run_dir = tmp_path / scenario
    done = load(chaoslab_cli, lab, scenario, run_dir, *SHORT[scenario])
    assert done.returncode in (0, 1), f"{done.returncode}\n{done.stdout}\n{done.stderr}"  # ran and was judged
    for name in REPORTS:
        assert (run_dir / name).stat().st_size > 0, name
    assert "<html" in (run_dir / "report.html").read_text()[:2000].lower()
    summary = summary_of(run_dir)
    assert summary["scenario"] == scenario and summary["checks"]
    # every stage long enough to settle was measured (the shape ticks once a second)
    long_enough = [s["label"] for i, s in enumerate(summary["stages"])
                   if s["until_s"] - (summary["stages"][i - 1]["until_s"] if i else 0) >= 2]
    assert [step["label"] for step in summary["steps"]] == long_enough
    # the journeys are correct against the real shop: no request failed (a replay that is not a replay fails)
    assert summary["total"]["failures"] == 0, summary["errors"]
    names = {(e["method"], e["name"]) for e in summary["entries"]}
    assert ("POST", "/api/auth/register") in names and ("POST", "/api/auth/login") in names
    assert "requests" in done.stdout and "thresholds" in done.stdout
    if scenario == "smoke":  # a healthy run exits 0, and a smoke run exercises every journey
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        assert "all thresholds held" in done.stdout
        for expected in [("GET", "/api/users/me"), ("PATCH", "/api/users/me"), ("POST", "/api/orders"),
                         ("POST", "/api/orders (replay)"), ("GET", "/api/orders/{id}"),
                         ("GET", "/api/notifications"), ("GET", "/api/users")]:  # the admin runs even here
            assert expected in names, names


def test_a_latency_fault_violates_the_thresholds_and_exits_1(chaoslab_cli: Cli, lab: dict[str, Any],
                                                            tmp_path: Path) -> None:
    admin, gateway = AdminClient.of(lab), replicas_of(lab, ["gateway"])[:1]
    # 600, not 500: Locust rounds times over 100 ms to 10 ms, so a 504 ms answer counts as 500 and passes
    # "<= 500 ms" on a fast machine
    [added] = admin.add_fault(gateway, {"kind": "latency", "latency_ms": 600, "ttl_s": 30})
    assert added["kind"] == "latency", added
    try:
        done = load(chaoslab_cli, lab, "smoke", tmp_path, "--users", "4", "--duration", "15s")
    finally:
        admin.clear_faults(gateway)
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    assert "threshold(s) violated" in done.stderr
    failed = [c for c in summary_of(tmp_path)["checks"] if not c["ok"]]
    assert failed and all(c["what"].startswith(("p95", "p99")) for c in failed)  # slow, not broken
    assert "p95 GET /api/users/me <= 500 ms" in " ".join(done.stderr.split())


def test_client_metrics_reach_prometheus_during_a_distributed_soak(lab: dict[str, Any], tmp_path: Path) -> None:
    """Locust's stats are scraped by the lab's Prometheus as job=locust while the run goes on; the run is the soak
    scenario's short form in distributed mode (a master and two worker processes) from the same command."""
    command = [sys.executable, "-m", "chaoslab.cli", "load", "soak", "--users", "4", "--duration", "25s",
               "--workers", "2", "--run-dir", str(tmp_path), "--state-dir", lab["state_dir"]]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], env=dict(os.environ))
    prometheus = Prometheus(lab["prometheus_url"], timeout_s=5)
    seen: dict[str, list[Sample]] = {}
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            users = prometheus.query('locust_users{job="locust"} > 0')
            latency = prometheus.query('locust_response_time_seconds{job="locust",quantile="0.95"}')
            if users and latency:
                seen = {"users": users, "latency": latency}
                break
            time.sleep(1)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen, "locust_users never appeared in Prometheus during the run"
    assert seen["users"][0].value > 0
    assert {s.labels["name"] for s in seen["latency"]} >= {"Aggregated"}
    assert proc.returncode in (0, 1), f"{proc.returncode}\n{out}\n{err}"
    summary = summary_of(tmp_path)
    assert summary["workers"] == 2 and summary["total"]["requests"] > 0
    assert (tmp_path / "worker-1.log").exists() and (tmp_path / "worker-2.log").exists()
    for name in REPORTS:
        assert (tmp_path / name).stat().st_size > 0, name
    assert summary["scenario"] == "soak" and summary["total"]["failures"] == 0, summary["errors"]
