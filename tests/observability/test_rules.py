"""The generated rule files: valid for promtool, unit-tested, and every alert complete (labels, annotations,
a runbook that exists and says what to do)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from chaoslab.observability import alerts, rules
from chaoslab.observability.profiles import PROFILES

from .conftest import require_binary, run

pytestmark = pytest.mark.quick

REQUIRED_ALERTS = {
    "AvailabilityBurnRateFast", "AvailabilityBurnRateSlow", "LatencyBurnRateFast", "LatencyBurnRateSlow",
    "ServiceDown", "ReplicaDown", "ReplicaRestarted", "PaymentsSaturated", "CircuitBreakerOpen", "OutboxBacklogGrowing",
    "DeadLetterQueueNotEmpty", "ConsumerStalled", "BrokerDown", "ClockSkew", "ConsumerLagHigh",
}
RUNBOOK_SECTIONS = ("## What it means", "## How to check", "## How to mitigate")


def rule_files(root: Path) -> list[Path]:
    return [root / rules.rule_path(name) for name in PROFILES]


def alert_rules(path: Path) -> list[dict]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules(repo_root: Path) -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", *rule_files(repo_root))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests(repo_root: Path) -> None:
    promtool = require_binary("promtool")
    tests = sorted((repo_root / "alerts" / "tests").glob("*.test.yml"))
    assert tests, "no promtool unit tests in alerts/tests"
    # One promtool per file, side by side: each evaluates every rule at every step, which is CPU-bound.
    procs = {test: subprocess.Popen([promtool, "test", "rules", str(test)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for test in tests}
    failed = []
    for test, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed.append(f"{test.name}:\n{output}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_required_alert_exists(repo_root: Path, profile: str) -> None:
    names = {rule["alert"] for rule in alert_rules(repo_root / rules.rule_path(profile))}
    assert names >= REQUIRED_ALERTS, f"missing: {sorted(REQUIRED_ALERTS - names)}"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_alert_has_severity_annotations_and_runbook(repo_root: Path, profile: str) -> None:
    problems = []
    for rule in alert_rules(repo_root / rules.rule_path(profile)):
        name = rule["alert"]
        labels = rule.get("labels", {})
        notes = rule.get("annotations", {})
        if labels.get("severity") not in ("page", "ticket"):
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not str(notes.get(key, "")).strip():
                problems.append(f"{name}: no {key}")
        if "{{" not in notes.get("description", ""):
            problems.append(f"{name}: the description has no template value")
        url = notes.get("runbook_url", "")
        if url != f"docs/runbooks/{name}.md":
            problems.append(f"{name}: runbook_url {url!r} is not docs/runbooks/{name}.md")
        elif not (repo_root / url).is_file():
            problems.append(f"{name}: {url} does not exist")
    assert not problems, "\n".join(problems)


def test_every_runbook_says_what_how_to_check_and_mitigate(repo_root: Path) -> None:
    problems = []
    for name in alerts.alert_names():
        text = (repo_root / alerts.runbook_url(name)).read_text()
        problems += [f"{name}: no '{s}'" for s in RUNBOOK_SECTIONS if s not in text]
        if "chaoslab" not in text or "dashboard" not in text.lower():
            problems.append(f"{name}: names no dashboard or chaoslab command to check with")
    assert not problems, "\n".join(problems)


def test_the_runbook_index_has_a_row_per_alert_and_runbook(repo_root: Path) -> None:
    """docs/runbooks/README.md lists every alert of the catalogue and every runbook page once, with its severity."""
    runbooks = repo_root / alerts.RUNBOOK_DIR
    rows = re.findall(r"^\| \[(\w+)\]\((\w+)\.md\) \| (\w+) \|$", (runbooks / "README.md").read_text(), re.MULTILINE)
    indexed = [name for name, _, _ in rows]
    severity = {rule.alert: rule.severity for rule in alerts.alert_rules(PROFILES["standard"])}
    pages = {path.stem for path in runbooks.glob("*.md") if path.name != "README.md"}
    problems = [f"{name}: no row in the index" for name in sorted((severity.keys() | pages) - set(indexed))]
    problems += [f"{name}: {indexed.count(name)} rows" for name in sorted(set(indexed)) if indexed.count(name) > 1]
    problems += [f"{name}: a row for no alert" for name in sorted(set(indexed) - severity.keys())]
    for name, target, level in rows:
        if target != name:
            problems.append(f"{name}: its row links to {target}.md")
        if name in severity and level != severity[name]:
            problems.append(f"{name}: the row says {level}, the rule {severity[name]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_service_alerts_carry_a_service(repo_root: Path, profile: str) -> None:
    """Alerts about one service carry `service` (a static label, or a `by (service)` / target label)."""
    for rule in alert_rules(repo_root / rules.rule_path(profile)):
        if rule["alert"] == "BrokerDown":
            continue
        static = "service" in rule.get("labels", {})
        # ReplicaDown and ReplicaRestarted keep each series' own target labels (no aggregation)
        from_series = (re.search(r"by \([^)]*service", rule["expr"])
                       or rule["alert"] in ("ReplicaDown", "ReplicaRestarted"))
        assert static or from_series, f"{rule['alert']} has no service label"


def test_native_windows_hold_four_scrapes() -> None:
    native = PROFILES["native"]
    for rule in alerts.alert_rules(native) + alerts.slo_recording_rules(native):
        for window in re.findall(r"\[(\w+)\]", rule.expr):
            seconds = sum(int(v) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u]
                          for v, u in re.findall(r"(\d+)([smhd])", window))
            assert seconds >= 4 * native.scrape_interval_s, f"{window} in {rule.expr}"


def test_native_groups_evaluate_every_two_seconds(repo_root: Path) -> None:
    groups = yaml.safe_load((repo_root / rules.rule_path("native")).read_text())["groups"]
    assert {g.get("interval") for g in groups} == {"2s"}


def test_the_day_long_windows_are_evaluated_in_a_slower_group_of_their_own(repo_root: Path) -> None:
    """Recomputing the 1-day and 3-day SLO windows at the server's pace kept cores busy in compose (issue 24): in
    the standard profile they and the slow-burn tickets that read them are a group evaluated every 5 minutes; the
    pages and every window they read stay in the group at the server's pace, so no page waits for the slow one."""
    groups = {g["name"]: g for g in yaml.safe_load((repo_root / rules.rule_path("standard")).read_text())["groups"]}
    fast, slow = groups["chaoslab-slo-standard"], groups["chaoslab-slo-slow-standard"]
    assert slow.get("interval") == "5m" and "interval" not in fast

    def windows(group: dict) -> set[str]:
        return {w for rule in group["rules"] for w in re.findall(r"\[(\w+)\]", rule["expr"])}

    assert {"1d", "3d"} <= windows(slow) and not {"1d", "2h", "3d"} & windows(fast)
    assert {r["alert"] for r in slow["rules"] if "alert" in r} == {"AvailabilityBurnRateSlow", "LatencyBurnRateSlow"}
    assert {r["alert"] for r in fast["rules"] if "alert" in r} == {"AvailabilityBurnRateFast", "LatencyBurnRateFast"}
    # Every recorded ratio an alert reads is recorded by some group.
    recorded = {r["record"] for g in groups.values() for r in g["rules"] if "record" in r}
    read = {m for g in groups.values() for r in g["rules"] if "alert" in r
            for m in re.findall(r"slo:sli_error:ratio_rate\w+", r["expr"])}
    assert read and read <= recorded
