"""Alertmanager configs: valid for amtool, routed by severity, grouped, inhibiting, notifying resolutions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoslab.observability import alertmanager

from .conftest import require_binary, run

pytestmark = pytest.mark.quick


def test_amtool_accepts_the_native_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager.render("http://127.0.0.1:18022/alertmanager"))
    result = run(amtool, "check-config", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_compose_config(repo_root: Path) -> None:
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", repo_root / "alerts" / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_notifies_the_chaos_runner(repo_root: Path) -> None:
    config = yaml.safe_load((repo_root / "alerts" / "alertmanager.yml").read_text())
    urls = {hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]}
    assert urls == {"http://chaos-runner:9095/alertmanager"}


@pytest.mark.parametrize("profile", ["native", "standard"])
def test_routing_grouping_and_resolutions(profile: str) -> None:
    url = "http://127.0.0.1:18022/x"
    config = yaml.safe_load(alertmanager.render(url, profile))
    route = config["route"]
    assert route["group_by"] == ["alertname", "service"]
    by_severity = {r["matchers"][0]: r["receiver"] for r in route["routes"]}
    assert by_severity == {'severity="page"': "page", 'severity="ticket"': "ticket"}
    for receiver in config["receivers"]:
        assert receiver["webhook_configs"] == [{"url": url, "send_resolved": True}]


def test_native_notifies_within_seconds() -> None:
    route = yaml.safe_load(alertmanager.render("http://127.0.0.1:1/"))["route"]
    assert route["group_wait"] == "1s"
    assert route["group_interval"] == "2s"


def test_service_down_inhibits_its_symptoms() -> None:
    config = yaml.safe_load(alertmanager.render("http://127.0.0.1:1/"))
    rule = next(r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="ServiceDown"'])
    assert rule["equal"] == ["service"]
    targets = rule["target_matchers"][0]
    for name in ("AvailabilityBurnRateFast", "AvailabilityBurnRateSlow", "LatencyBurnRateFast",
                 "LatencyBurnRateSlow", "ReplicaDown"):
        assert name in targets
    assert "ServiceDown" not in targets


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError):
        alertmanager.render("http://x/", profile="prod")
