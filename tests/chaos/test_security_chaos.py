"""The security faults' experiments, for real: `chaoslab chaos run` against the chaos tests' lab (mutual TLS, the
default; payments=3) under the built-in order stream, judged from their journals: an expired certificate, a
certificate from a CA nobody trusts, the gateway presenting payments' certificate, a caller outside the call graph.
Each must be refused, show in its metric and alert, and recover when rolled back; and the same experiment with a
wrong expectation (the caller let in) must fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaoslab.chaos import probes
from chaoslab.chaos.experiments import resolve
from chaoslab.chaos.runner import RunOptions, RunResult, run
from chaoslab.lab import certfaults
from chaoslab.lab.spec import load_spec

pytestmark = pytest.mark.lab
LOAD_RATE = 4.0
WARMUP_S = 3.0

# (experiment, vars, bounds on measurements, what the journal must show of the refusal)
SECURITY = [
    ("expired-certificate", {}, {"time_to_detect": 30, "time_to_resolve": 60}, "orders-counts-the-failed-handshakes"),
    ("untrusted-certificate", {}, {"time_to_refuse": 30, "time_to_detect": 30, "time_to_orders": 30},
     "handshakes-failed"),
    ("wrong-identity", {}, {"time_to_refuse": 30, "time_to_detect": 30, "time_to_orders": 30}, "calls-denied"),
    ("caller-outside-graph", {"duration_s": 12}, {"time_to_detect": 30, "time_to_resolve": 60},
     "notifications-calls-payments"),
]


SECURITY_ALERTS = ("TLSHandshakeFailures", "CallerNotAllowed")  # what the experiments raise and must see quiet first


def run_experiment(name: str, lab: dict[str, Any], tmp_path: Path, variables: dict[str, Any]) -> RunResult:
    # A calm start: the previous experiment's errors out of the safeguard's 10 s window (untrusted-certificate's
    # refused orders burned the gateway's budget into the next run, whose safeguard stopped it) and its alerts
    # resolved (the next one's hypothesis wants them quiet). Seen when the suite shared the machine.
    config = {"chaoslab_state_dir": lab["state_dir"]}
    probes.wait_for_error_ratio("gateway", max_ratio=0.01, window="10s", timeout_s=90, configuration=config)
    for alert in SECURITY_ALERTS:
        if probes.alert_state(alert, configuration=config) != "inactive":
            probes.wait_for_alert(alert, state="inactive", timeout_s=120, configuration=config)
    options = RunOptions(resolve(name), Path(lab["state_dir"]), tmp_path / "runs", "orders", LOAD_RATE, WARMUP_S,
                         variables)
    return run(options)


def output_of(result: RunResult, activity: str) -> Any:
    journal = json.loads((result.run_dir / "journal.json").read_text())
    found = [r.get("output") for r in journal["run"] if r["activity"]["name"] == activity]
    assert found, f"no activity {activity} in the journal"
    return found[0]


@pytest.mark.parametrize(("name", "variables", "bounds", "evidence"), SECURITY, ids=[s[0] for s in SECURITY])
def test_a_security_fault_is_refused_seen_and_recovered_from(name: str, variables: dict[str, Any],
                                                             bounds: dict[str, float], evidence: str,
                                                             chaos_lab: dict[str, Any], lab_config: dict[str, str],
                                                             tmp_path: Path) -> None:
    result = run_experiment(name, chaos_lab, tmp_path, variables)
    failed = [f"{s.phase} {s.name}: {s.status} {s.detail}" for s in result.verdict.steps if not s.ok]
    assert result.verdict.passed, f"{result.run_dir}: {result.verdict.failures} {failed}"
    assert result.leftovers == {}, "the rollbacks left something for the runner to undo"
    measured = {m["measure"]: m["seconds"] for m in result.verdict.measurements}
    for measure, bound in bounds.items():
        assert measured[measure] <= bound, (measure, measured)
    seen = output_of(result, evidence)  # the refusal in numbers: handshakes failed, calls denied
    count = seen if isinstance(seen, int | float) else seen["denied"]
    assert count > 0, seen
    # nothing left: no certificate fault, every replica ready
    assert certfaults.active(load_spec(chaos_lab["state_dir"])) == {}
    assert probes.lab_ready(configuration=lab_config)


def test_a_security_experiment_with_a_wrong_expectation_fails(chaos_lab: dict[str, Any],
                                                              lab_config: dict[str, str], tmp_path: Path) -> None:
    """The caller outside the call graph, expected to be let in: every call is denied, so the run must fail."""
    result = run_experiment("caller-outside-graph", chaos_lab, tmp_path, {"duration_s": 4, "expect": "answered"})
    assert not result.verdict.passed
    assert any("notifications-calls-payments" in f for f in result.verdict.failures), result.verdict.failures
    assert certfaults.active(load_spec(chaos_lab["state_dir"])) == {}
