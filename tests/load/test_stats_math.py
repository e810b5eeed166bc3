"""Summaries, per-stage windows and the Prometheus collector on synthetic Locust statistics (no lab)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("probe_stats.py"))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_window_holds_only_the_requests_between_its_snapshots(probe: dict[str, Any]) -> None:
    w = probe["window"]
    assert w["seconds"] == 10
    assert w["total"]["requests"] == 100 and w["total"]["rps"] == 10
    by_key = {(r["method"], r["name"]): r for r in w["entries"]}
    assert set(by_key) == {("POST", "/api/orders"), ("PATCH", "/api/users/me")}  # GET was all before
    assert by_key[("POST", "/api/orders")]["p95_ms"] == 200
    assert by_key[("PATCH", "/api/users/me")]["p99_ms"] == 40


def test_the_summary_counts_the_whole_run(probe: dict[str, Any]) -> None:
    s = probe["summary"]
    assert s["total"]["requests"] == 200 and s["total"]["failures"] == 1
    get = next(r for r in s["entries"] if r["method"] == "GET")
    assert get["p50_ms"] == 10 and get["p95_ms"] == 1000 and get["failures"] == 1
    assert s["errors"][0]["error"] == "HTTP 429 Too Many Requests"


def test_quantiles_merge_the_methods_of_one_name(probe: dict[str, Any]) -> None:
    q = probe["quantiles"]
    assert q["/api/users/me"]["0.5"] == pytest.approx(0.02)
    assert q["/api/users/me"]["0.95"] == pytest.approx(0.3)  # the PATCHes are the slowest 20%
    assert "Aggregated" in q


def test_the_collector_exposes_the_dashboards_names(probe: dict[str, Any]) -> None:
    samples = probe["samples"]
    names = {s[0] for s in samples}
    assert {"locust_users", "locust_requests_per_second", "locust_failures_per_second",
            "locust_response_time_seconds", "locust_requests_total", "locust_failures_total"} <= names
    info = next(s for s in samples if s[0] == "locust_run_info")
    assert info[1] == {"scenario": "smoke", "mix": "shop"} and info[2] == 1
    users = next(s for s in samples if s[0] == "locust_users")
    assert users[2] == 7
    rt = {(s[1]["name"], s[1]["quantile"]) for s in samples if s[0] == "locust_response_time_seconds"}
    assert ("/api/users/me", "0.99") in rt and ("Aggregated", "0.5") in rt
    requests = {(s[1]["name"], s[1]["method"]): s[2] for s in samples if s[0] == "locust_requests_total"}
    assert requests == {("/api/users/me", "GET"): 80, ("/api/users/me", "PATCH"): 20}


def test_the_recorder_measures_each_step_after_it_settled(probe: dict[str, Any]) -> None:
    steps = probe["steps"]
    assert [s["users"] for s in steps] == [2, 4]
    first, second = steps
    assert first["start_s"] == 0 and first["end_s"] == 10 and second["end_s"] == 20
    assert first["total"]["rps"] == pytest.approx(5, rel=0.15)
    assert second["total"]["rps"] == pytest.approx(10, rel=0.15)
    assert first["total"]["p95_ms"] == 100 and second["total"]["p95_ms"] == 250
