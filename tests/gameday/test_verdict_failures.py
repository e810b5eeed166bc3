"""Each verdict of issue 19 shown to fail, or to refuse to pass, when what it checks is broken, on a lab of its own
(the quick gameday, tests/gameday/test_gameday_lab.py, shows them passing on a healthy lab):

- an alert rule removed from the running Prometheus: `chaoslab coverage` reports the fault as a blind spot and
  exits 1;
- a rule deliberately slowed (ServiceDown's `for:` ten times longer), orders' breaker switched off through its
  configuration, and a page budget of zero for a fault that pages: one gameday, three verdicts failing for those
  three reasons while the rest hold;
- Prometheus paused (SIGSTOP) during the fault: the verdicts that rest on it are inconclusive, never passed, and
  the gameday exits 3.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaoslab.clients.prometheus import Prometheus
from support.lab import (
    registry,
    release_base_port,
    replica_args,
    reserve_base_port,
    run_chaoslab,
    start_lab,
    stop_lab,
)
from support.waiting import eventually

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SLOWED_FOR = "40s"


@pytest.fixture(scope="module")
def judged_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("verdicts-lab") / "state"
    base = reserve_base_port()
    try:
        yield start_lab(state_dir, base, *replica_args("payments=2"))
        stop_lab(state_dir)
    finally:
        release_base_port(base)


def _pid(lab: dict[str, Any], name: str) -> int:
    return next(p["pid"] for p in registry(Path(lab["state_dir"]))["processes"] if p["name"] == name)


class Rules:
    """The lab's running Prometheus pointed at an edited copy of its rules file, and back (SIGHUP reloads)."""

    def __init__(self, lab: dict[str, Any], folder: Path) -> None:
        self.lab = lab
        self.config = Path(lab["state_dir"]) / "prometheus" / "prometheus.yml"
        self.original = self.config.read_text()
        self.source = Path(yaml.safe_load(self.original)["rule_files"][0])
        self.folder = folder

    def _reload(self, text: str, check: Any) -> None:
        self.config.write_text(text)
        os.kill(_pid(self.lab, "prometheus"), signal.SIGHUP)
        prometheus = Prometheus(self.lab["prometheus_url"], timeout_s=5)
        eventually(lambda: check(prometheus.rule_groups()), timeout_s=30, what="Prometheus to load the rules")

    def use(self, edit: Any, check: Any) -> None:
        rules = yaml.safe_load(self.source.read_text())
        edit(rules)
        path = self.folder / "edited.rules.yml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        self._reload(self.original.replace(str(self.source), str(path)), check)

    def restore(self) -> None:
        self._reload(self.original, lambda groups: any(r.get("name") == "ServiceDown" and r.get("duration") == 4
                                                       for g in groups for r in g["rules"]))


def _service_down(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ServiceDown"]


def _rules_named(groups: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if r.get("name") == name]


def _plan(folder: Path, name: str, experiment: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "load": {"scenario": "rate", "rate": 6, "baseline_s": 10, "warmup_s": 5},
        "experiments": [{"experiment": "payments-down", "fault_end": "start-payments", "settle_s": 20,
                         "max_time_to_recover_s": 60, "client": {"max_error_ratio": 0.6},
                         "vars": {"service_down_within_s": 90, "max_order_s": 10}, **experiment}]}))
    return path


def _summary(runs: Path, name: str) -> dict[str, Any]:
    [path] = sorted(runs.glob(f"*-gameday-{name}/summary.json"))
    return dict(json.loads(path.read_text()))


def _by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in summary["verdicts"]}


def test_a_removed_rule_is_a_blind_spot(judged_lab: dict[str, Any], tmp_path: Path) -> None:
    rules = Rules(judged_lab, tmp_path)

    def remove(data: dict[str, Any]) -> None:
        for group in data["groups"]:
            group["rules"] = [r for r in group["rules"] if r.get("alert") != "ServiceDown"]

    rules.use(remove, lambda groups: not _rules_named(groups, "ServiceDown"))
    try:
        done = run_chaoslab("coverage", "--faults", "stop", "--services", "payments", "--fault-s", "12", "--json",
                            "--state-dir", judged_lab["state_dir"], "--runs-dir", tmp_path / "runs", timeout=600)
    finally:
        rules.restore()
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    [cell] = result["cells"]
    assert cell["fault"] == "stop" and cell["target"] == "payments" and cell["blind"] and cell["detected"] is False
    assert not any(a.startswith("ServiceDown") for a in cell["alerts"])
    assert result["blind_spots"] == ["stop payments"] and "ServiceDown" in result["dead_alerts"]
    html = (Path(result["run_dir"]) / "coverage.html").read_text()
    assert re.search(r'data-fault="stop"\s+data-target="payments"\s+data-blind="true"', html), html[:3000]


def test_a_slowed_rule_a_breaker_off_and_a_page_over_budget_fail(judged_lab: dict[str, Any], tmp_path: Path) -> None:
    rules = Rules(judged_lab, tmp_path)

    def slow(data: dict[str, Any]) -> None:
        for rule in _service_down(data):
            rule["for"] = SLOWED_FOR

    state = judged_lab["state_dir"]
    assert run_chaoslab("env", "orders:BREAKER_FAIL_MAX=1000000", "--state-dir", state).returncode == 0
    rules.use(slow, lambda groups: all(r.get("duration") == 40 for r in _rules_named(groups, "ServiceDown")))
    try:
        plan = _plan(tmp_path, "broken", {
            "alerts": [{"name": "ServiceDown", "labels": {"service": "payments"}, "max_time_to_detect_s": 120,
                        "must_resolve": False}],
            "page_budget": 0,  # ServiceDown pages: one page over the budget
            "allowed_pages": ["AvailabilityBurnRateFast", "LatencyBurnRateFast"],
            "traces": {"breaker": [{"service": "orders", "upstream": "payments"}]}})
        done = run_chaoslab("gameday", "--plan", plan, "--state-dir", state, "--runs-dir", tmp_path / "runs",
                            timeout=900)
    finally:
        rules.restore()
        run_chaoslab("env", "orders:BREAKER_FAIL_MAX=", "--state-dir", state)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    verdicts = _by_name(_summary(tmp_path / "runs", "broken"))
    predicted = verdicts['alert ServiceDown{service="payments"} detected as the rule predicts']
    assert predicted["status"] == "failed" and "later than the rule promises" in predicted["detail"], predicted
    assert predicted["measured"] > predicted["predicted"][1]
    assert verdicts['alert ServiceDown{service="payments"} time-to-detect']["status"] == "passed"
    pages = verdicts["pages within budget"]
    assert pages["status"] == "failed" and pages["measured"] >= 1, pages
    breaker = verdicts["traces: orders → payments breaker engaged"]
    assert breaker["status"] == "failed" and breaker["measured"] == 0, breaker
    for held in ("steady state before", "data audit", "no unexpected page"):
        assert verdicts[held]["status"] == "passed", verdicts[held]


def test_a_paused_prometheus_makes_verdicts_inconclusive(judged_lab: dict[str, Any], tmp_path: Path) -> None:
    state = judged_lab["state_dir"]
    plan = _plan(tmp_path, "paused", {"alerts": [{"name": "ServiceDown", "labels": {"service": "payments"},
                                                  "max_time_to_detect_s": 60}],
                                      "allowed_pages": ["AvailabilityBurnRateFast", "LatencyBurnRateFast"]})
    paused: dict[str, float] = {}

    def pause_when_payments_stops() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            reps = registry(Path(state))["services"]["payments"]["replicas"]
            if reps and all(r["state"] != "RUNNING" for r in reps):
                pid = _pid(judged_lab, "prometheus")
                os.kill(pid, signal.SIGSTOP)
                paused["at"] = time.time()
                time.sleep(10)
                os.kill(pid, signal.SIGCONT)
                return
            time.sleep(0.5)

    pauser = threading.Thread(target=pause_when_payments_stops, daemon=True)
    pauser.start()
    try:
        done = run_chaoslab("gameday", "--plan", plan, "--state-dir", state, "--runs-dir", tmp_path / "runs",
                            timeout=900)
    finally:
        pauser.join(timeout=30)
        os.kill(_pid(judged_lab, "prometheus"), signal.SIGCONT)
    assert paused, "payments never stopped: the experiment did not run"
    summary = _summary(tmp_path / "runs", "paused")
    verdicts = _by_name(summary)
    alert_verdicts = [v for name, v in verdicts.items() if name.startswith("alert ")]
    assert alert_verdicts and all(v["status"] == "inconclusive" for v in alert_verdicts), alert_verdicts
    assert re.search(r"missed \d+ evaluation", alert_verdicts[0]["inconclusive"]), alert_verdicts[0]
    assert verdicts["time-to-recover"]["status"] == "inconclusive"
    assert summary["counts"]["inconclusive"] >= len(alert_verdicts) and not summary["passed"]
    if summary["counts"]["failed"] == 0:
        assert done.returncode == 3, done.stdout[-2000:]
        assert "INCONCLUSIVE" in done.stdout
    junit = next((tmp_path / "runs").glob("*-gameday-paused/junit.xml")).read_text()
    assert 'type="Inconclusive"' in junit
    assert summary["experiments"][0]["impairments"], "the impairment is not in the summary"
