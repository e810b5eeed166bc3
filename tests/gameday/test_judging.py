"""How a gameday judges (quick, no lab): fault windows from real journals, alerts from webhook payloads, the
steady state's return, and the verdicts, including a bound that cannot be met, which fails with its name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaoslab.chaos.verdict import compute
from chaoslab.gameday import alerts, journal, measure, verdicts
from chaoslab.gameday.plan import AlertSpec, ExperimentSpec
from chaoslab.lab import webhook

pytestmark = pytest.mark.quick

JOURNALS = Path(__file__).parents[1] / "chaos" / "journals"


def real(name: str) -> dict[str, Any]:
    return dict(json.loads((JOURNALS / name).read_text()))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def run(name: str, kind: str, start: float, end: float) -> dict[str, Any]:
    return {"activity": {"name": name, "type": kind}, "status": "succeeded", "start": iso(start), "end": iso(end)}


# --- fault windows -------------------------------------------------------------------------------------------

def test_an_instant_fault_ends_when_its_injection_ends() -> None:
    window = journal.fault_window(real("passed-kill-payments-replica.json"))
    assert window is not None
    assert window.injected_by == window.undone_by == "kill-one-payments-replica"
    assert 0 < window.end - window.start < 1


def test_an_action_undoes_a_fault_when_it_starts_and_a_probe_when_it_ends() -> None:
    data = {"run": [run("stop", "action", 100, 103), run("alert-fires", "probe", 103, 110),
                    run("start", "action", 110, 119), run("faults-expired", "probe", 119, 125)]}
    by_action = journal.fault_window(data, None, "start")
    assert by_action is not None and (by_action.start, by_action.end) == (100, 110)
    by_probe = journal.fault_window(data, "stop", "faults-expired")
    assert by_probe is not None and by_probe.end == 125


def test_no_window_when_the_method_was_skipped() -> None:
    assert journal.fault_window(real("failed-hypothesis-before.json")) is None


# --- alerts at the webhook -----------------------------------------------------------------------------------

def note(at: float, status: str, name: str, fingerprint: str = "f1", **labels: str) -> dict[str, Any]:
    return {"received_at": at, "status": status, "alerts": [
        {"status": status, "labels": {"alertname": name, **labels}, "fingerprint": fingerprint,
         "startsAt": iso(at - 1), "endsAt": "0001-01-01T00:00:00Z"}]}


FAULT = journal.FaultWindow(1000.0, 1020.0, "stop-every-payments-replica", "start-payments")
PAYMENTS_DOWN = AlertSpec(name="ServiceDown", labels={"service": "payments"}, max_time_to_detect_s=25,
                          max_time_to_resolve_s=60)


def test_time_to_detect_and_to_resolve_are_measured_at_the_webhook_for_the_matching_instance() -> None:
    seen = webhook.events([
        note(990, "firing", "ServiceDown", "old", service="payments"),  # before the fault: not this one
        note(1005, "firing", "ServiceDown", "o", service="orders"),  # another instance
        note(1008.5, "firing", "ServiceDown", "p", service="payments", severity="page"),
        note(1024, "resolved", "ServiceDown", "p", service="payments"),
    ])
    outcome = alerts.outcome(PAYMENTS_DOWN, seen, FAULT)
    assert outcome.notified and outcome.time_to_detect_s == 8.5
    assert outcome.resolved and outcome.time_to_resolve_s == 4.0
    assert outcome.fired_at == 1007.5  # Prometheus' startsAt


def test_an_alert_that_never_arrived_fails_notified_and_time_to_detect() -> None:
    spec = ExperimentSpec(experiment="payments-down", alerts=[PAYMENTS_DOWN])
    found = verdicts.alert_verdicts("payments-down", spec, [alerts.outcome(PAYMENTS_DOWN, [], FAULT)])
    assert {v.name: v.passed for v in found} == {
        'alert ServiceDown{service="payments"} notified': False,
        'alert ServiceDown{service="payments"} time-to-detect': False,
        'alert ServiceDown{service="payments"} resolved': False}
    assert found[2].detail == "it never fired"


def test_a_bound_that_cannot_be_met_fails_with_that_verdict_named() -> None:
    impossible = AlertSpec(name="ServiceDown", labels={"service": "payments"}, max_time_to_detect_s=0.001)
    spec = ExperimentSpec(experiment="payments-down", alerts=[impossible])
    seen = webhook.events([note(1008.5, "firing", "ServiceDown", service="payments"),
                          note(1024, "resolved", "ServiceDown", service="payments")])
    found = verdicts.alert_verdicts("payments-down", spec, [alerts.outcome(impossible, seen, FAULT)])
    failed = [v.id for v in found if not v.passed]
    assert failed == ['payments-down: alert ServiceDown{service="payments"} time-to-detect']
    assert found[1].measured == 8.5 and found[1].bound == 0.001


def test_alert_intervals_pair_firing_and_resolved_by_fingerprint() -> None:
    seen = webhook.events([note(10, "firing", "A", "a"), note(11, "firing", "B", "b"), note(12, "firing", "A", "a"),
                          note(15, "resolved", "A", "a")])
    found = {(i.name, i.fired_at, i.resolved_at) for i in alerts.intervals(seen)}
    assert found == {("A", 10, 15), ("B", 11, None)}


# --- recovery ------------------------------------------------------------------------------------------------

def test_the_steady_state_must_hold_for_its_hold_time() -> None:
    up = {float(t): 1.0 for t in range(100, 121)}
    up[101] = 0.0
    errors = {float(t): (0.2 if t < 106 else 0.0) for t in range(100, 121)}
    errors[109] = 0.05  # one bad sample: the run of good ones restarts after it
    assert measure.first_steady(up, errors, 100, 0.01, 4) == 110
    assert measure.first_steady(up, errors, 100, 0.01, 15) is None  # not enough samples to know yet
    assert measure.first_steady(up, {}, 102, 0.01, 4) == 102  # no traffic: nothing failed


def test_recovery_and_client_verdicts_against_their_bounds() -> None:
    spec = ExperimentSpec(experiment="payments-down", max_time_to_recover_s=30,
                          client={"max_error_ratio": 0.25, "max_p99_s": 1})
    ok = verdicts.recovery_verdict("x", spec, FAULT, measure.Recovery(True, 1031.0, 11.0, 1040.0))
    late = verdicts.recovery_verdict("x", spec, FAULT, measure.Recovery(False, None, None, 1060.0))
    assert ok.passed and ok.measured == 11.0 and not late.passed and "within 30 s" in late.detail
    view = measure.ClientView(1000, 1031, 200, 60, 0.3, 0.05, 0.4, 1.5)
    found = {v.name: v.passed for v in verdicts.client_verdicts("x", spec, view)}
    assert found == {"client error ratio": False, "client p99 latency": False}


# --- the chaos run's own verdict, split into before / during / after / run ----------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("passed-kill-payments-replica.json", {"steady state before": True, "during the fault": True,
                                           "steady state after": True, "run and rollbacks": True}),
    ("failed-hypothesis-before.json", {"steady state before": False, "during the fault": False,
                                       "steady state after": False, "run and rollbacks": True}),
    ("failed-action-raised.json", {"steady state before": True, "during the fault": False,
                                   "steady state after": True, "run and rollbacks": True}),
    ("interrupted-safeguard.json", {"run and rollbacks": False}),
])
def test_hypothesis_verdicts_from_real_journals(name: str, expected: dict[str, bool]) -> None:
    data = real(name)
    declared = {"method": len(data["experiment"]["method"]), "rollbacks": len(data["experiment"]["rollbacks"])}
    found = {v.name: v.passed for v in verdicts.hypothesis_verdicts("x", compute(data), declared, {})}
    assert {k: found[k] for k in expected} == expected, found


def test_something_left_behind_fails_the_run() -> None:
    data = real("passed-kill-payments-replica.json")
    declared = {"method": 3, "rollbacks": 1}
    found = verdicts.hypothesis_verdicts("x", compute(data), declared, {"paused": ["payments-2"]})
    assert [v.detail for v in found if not v.passed] == ["left behind: paused: payments-2"]


def test_the_data_audit_verdict_names_lost_and_duplicated_orders() -> None:
    good = verdicts.audit_verdict("x", {"ok": True, "orders": 3, "payments": 3, "notifications": 3})
    bad = verdicts.audit_verdict("x", {"ok": False, "missing_notification": 2, "duplicate_payment": 1})
    assert good.passed and not bad.passed
    assert bad.detail == "duplicate_payment 1; missing_notification 2"
    assert not verdicts.audit_verdict("x", None).passed
