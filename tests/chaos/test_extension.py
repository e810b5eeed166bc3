"""The chaoslab Chaos Toolkit extension without a lab: discovery, the activities' shape, the experiments'
validity, and the pure parts (replica selection, the data audit, alert notifications)."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import pytest
from chaoslib.discovery.discover import discover as chaos_discover
from chaoslib.exceptions import ActivityFailed
from chaoslib.experiment import ensure_experiment_is_valid

from chaoslab.chaos import actions, marks, probes
from chaoslab.chaos import discover as extension_discover
from chaoslab.chaos.experiments import all_experiments, lint, resolve
from chaoslab.chaos.lab import select_replicas, state_dir
from chaoslab.clients.admin import fault_body
from chaoslab.errors import ClientError
from chaoslab.lab import webhook
from chaoslab.lab.audit import audit_views

pytestmark = pytest.mark.quick
TEST_EXPERIMENTS = Path(__file__).parent / "experiments"
EXPECTED = {"kill-payments-replica", "payments-latency", "payments-down", "broker-outage", "auth-down",
            "poison-message", "cpu-burn-orders",
            # below the application (an isolated lab)
            "payments-blackhole", "gateway-orders-loss", "broker-partition", "notifications-bandwidth",
            "orders-disk-full", "notifications-oom", "gateway-clock-skew",
            # security faults (mutual TLS, the default)
            "expired-certificate", "untrusted-certificate", "wrong-identity", "caller-outside-graph"}


def exported() -> list[Any]:
    return [getattr(actions, n) for n in actions.__all__] + [getattr(probes, n) for n in probes.__all__]


def test_discover_lists_every_exported_action_and_probe() -> None:
    found = extension_discover(discover_system=False)
    names = {(a["type"], a["name"]) for a in found["activities"]}
    assert names == {("action", n) for n in actions.__all__} | {("probe", n) for n in probes.__all__}
    assert found["extension"]["name"] == "chaoslab"
    json.dumps(found)


def test_chaos_discover_finds_the_extension_from_the_distribution_name() -> None:
    """What `chaos discover chaoslab --no-install` does: import the distribution's top-level package, call its
    discover()."""
    found = chaos_discover("chaoslab", discover_system=False, download_and_install=False)
    assert {a["name"] for a in found["activities"]} >= {"kill_replica", "inject_latency", "data_audit"}


@pytest.mark.parametrize("func", exported(), ids=lambda f: f.__name__)
def test_every_activity_is_synchronous_and_takes_the_configuration(func: Any) -> None:
    # Chaos Toolkit never awaits a coroutine; without `configuration` an activity could not find the lab
    assert not inspect.iscoroutinefunction(func)
    assert "configuration" in inspect.signature(func).parameters
    assert func.__doc__


def test_the_seven_native_experiments_exist_and_validate() -> None:
    paths = all_experiments()
    assert {p.stem for p in paths} == EXPECTED
    for path in paths + sorted(TEST_EXPERIMENTS.glob("*.json")):
        ensure_experiment_is_valid(json.loads(path.read_text()))  # raises when invalid
        assert lint(path) == [], path.name


def test_every_native_experiment_has_a_safeguard_and_restores_the_lab_last() -> None:
    for path in all_experiments():
        data = json.loads(path.read_text())
        controls = {c["provider"]["module"] for c in data.get("controls", [])}
        assert "chaosaddons.controls.safeguards" in controls, path.name
        assert data["rollbacks"][-1]["provider"]["func"] == "restore_lab", path.name


def test_lint_finds_what_chaos_validate_does_not(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "title": "t", "description": "d", "configuration": {"prometheus_base_url": "http://127.0.0.1:18020"},
        "method": [{"type": "action", "name": "a", "provider": {
            "type": "python", "module": "chaoslab.chaos.actions", "func": "_inject", "arguments": {}}}],
    }))
    problems = lint(bad)
    assert "no steady-state hypothesis probes" in problems
    assert not any("pause" in p for p in problems)
    assert "no rollbacks: a fault must always be undone" in problems
    assert "no configuration key chaoslab_state_dir" in problems
    assert any("hard-coded address 127.0.0.1:18020" in p for p in problems)
    assert any("_inject is not exported" in p for p in problems)


def test_long_pauses_are_refused_for_hold_which_a_safeguard_can_interrupt(tmp_path: Path) -> None:
    data = json.loads(resolve("kill-payments-replica").read_text())
    data["method"][0]["pauses"] = {"after": 10}
    data["method"][1]["pauses"] = {"before": "${observe_s}"}
    path = tmp_path / "paused.json"
    path.write_text(json.dumps(data))
    problems = lint(path)
    assert len(problems) == 2 and all("chaoslab.chaos.actions.hold" in p for p in problems)
    started = time.monotonic()
    assert actions.hold(0.3) == {"held_s": 0.3}
    assert 0.3 <= time.monotonic() - started < 1.0


def test_experiments_resolve_by_name_or_path() -> None:
    assert resolve("poison-message").name == "poison-message.json"
    assert resolve("poison-message.json") == resolve(str(resolve("poison-message")))
    with pytest.raises(FileNotFoundError, match="known: "):
        resolve("no-such-experiment")


def test_state_dir_comes_from_configuration_then_environment_then_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAOSLAB_STATE_DIR", str(tmp_path / "env"))
    assert state_dir({"chaoslab_state_dir": str(tmp_path / "conf")}) == tmp_path / "conf"
    assert state_dir({}) == tmp_path / "env"
    monkeypatch.delenv("CHAOSLAB_STATE_DIR")
    assert state_dir(None) == Path(".chaoslab").resolve()


def test_without_a_lab_an_activity_fails_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ActivityFailed, match="chaoslab up"):
        probes.service_ready("orders", configuration={"chaoslab_state_dir": str(tmp_path)})


REGISTRY = {"services": {"payments": {"replicas": [
    {"name": f"payments-{n}", "admin_url": f"http://127.0.0.1:{18179 + n}"} for n in (1, 2, 3)]}}}


def test_replica_selection() -> None:
    assert [r["name"] for r in select_replicas(REGISTRY, "payments", "all")] == ["payments-1", "payments-2",
                                                                                  "payments-3"]
    assert len(select_replicas(REGISTRY, "payments", None)) == 1
    assert select_replicas(REGISTRY, "payments", 2)[0]["name"] == "payments-2"
    assert select_replicas(REGISTRY, "payments", "3")[0]["name"] == "payments-3"
    assert select_replicas(REGISTRY, "payments", "payments-1")[0]["name"] == "payments-1"
    with pytest.raises(ActivityFailed, match="no replica 'payments-9'"):
        select_replicas(REGISTRY, "payments", 9)
    with pytest.raises(ActivityFailed, match="no service 'pay'"):
        select_replicas(REGISTRY, "pay", "all")


def test_fault_bodies_leave_unset_fields_to_the_kit_and_refuse_unknown_ones() -> None:
    assert fault_body("latency", latency_ms=200, route=None, ttl_s=30) == {
        "kind": "latency", "latency_ms": 200, "ttl_s": 30}
    with pytest.raises(ClientError, match="unknown fault fields: delay"):
        fault_body("latency", delay=3)


def _views(orders: list[dict[str, Any]], payments: list[dict[str, Any]], notes: list[dict[str, Any]]) -> Any:
    return ({"items": orders, "unsent": 0}, {"items": payments},
            {"items": notes, "notifications": sum(n["notifications"] for n in notes), "duplicates": 0})


def order(n: int, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"id": f"o{n}", "payment_id": f"p{n}", "event_id": f"e{n}", "created_at": created}


def test_the_data_audit_holds_when_every_order_has_one_payment_and_one_notification() -> None:
    views = _views([order(1), order(2)], [{"payment_id": "p1", "order_ref": "o1"},
                                          {"payment_id": "p2", "order_ref": "o2"}],
                   [{"event_id": "e1", "notifications": 1}, {"event_id": "e2", "notifications": 1}])
    report = audit_views(*views, now=1e10, settle_s=10)
    assert report["ok"] and report["orders"] == 2 and report["missing_notification"] == 0


def test_the_data_audit_names_lost_duplicated_and_unpaid_orders() -> None:
    views = _views(
        [order(1), order(2), order(3), order(4)],
        [{"payment_id": "p1", "order_ref": "o1"}, {"payment_id": "p2", "order_ref": "o2"},
         {"payment_id": "p2b", "order_ref": "o2"}, {"payment_id": "p3", "order_ref": "o9"}],
        [{"event_id": "e1", "notifications": 2}, {"event_id": "e2", "notifications": 1},
         {"event_id": "e3", "notifications": 1}])
    report = audit_views(*views, now=1e10, settle_s=10)
    assert not report["ok"]
    assert report["duplicate_notification_ids"] == ["o1"]
    assert report["duplicate_payment_ids"] == ["o2"]
    assert report["payment_mismatch_ids"] == ["o3"]
    assert report["missing_payment_ids"] == ["o4"] and report["missing_notification_ids"] == ["o4"]
    assert report["payment_without_order_ids"] == ["p3"]  # charged for o9, which orders never wrote


def test_a_charge_for_a_pending_order_is_counted_and_one_for_no_order_fails() -> None:
    """orders writes an order pending before charging: a charge whose confirmation could not be written belongs to
    a pending order (counted: a retry with its key confirms it); a charge for an order orders never wrote is money
    taken for nothing."""
    orders_view, payments_view, notes_view = _views(
        [order(1)], [{"payment_id": "p1", "order_ref": "o1"}, {"payment_id": "p7", "order_ref": "o7"}],
        [{"event_id": "e1", "notifications": 1}])
    report = audit_views({**orders_view, "pending": ["o7"]}, payments_view, notes_view, now=1e10, settle_s=10)
    assert report["ok"] and report["pending_orders"] == 1 and report["charged_pending"] == 1
    report = audit_views(orders_view, payments_view, notes_view, now=1e10, settle_s=10)
    assert not report["ok"] and report["payment_without_order_ids"] == ["p7"]


def test_a_young_order_without_its_notification_is_in_flight_not_lost() -> None:
    young = order(1, created="2026-01-01T00:00:05Z")
    views = _views([young], [{"payment_id": "p1", "order_ref": "o1"}], [])
    now = 1767225605.0  # 2026-01-01T00:00:05Z
    assert audit_views(*views, now=now, settle_s=10)["in_flight"] == 1
    assert audit_views(*views, now=now, settle_s=10)["ok"]
    assert not audit_views(*views, now=now + 60, settle_s=10)["ok"]


ALERTMANAGER_PAYLOAD = {
    "status": "firing", "received_at": 1000.5,
    "alerts": [
        {"status": "firing", "labels": {"alertname": "ServiceDown", "service": "payments", "job": "payments"}},
        {"status": "resolved", "labels": {"alertname": "ServiceDown", "service": "auth"}},
        {"status": "firing", "labels": {"alertname": "ReplicaDown", "service": "payments"}},
    ],
}


def test_notifications_match_on_alert_status_and_labels() -> None:
    seen = webhook.events([ALERTMANAGER_PAYLOAD])
    assert [e.received_at for e in seen] == [1000.5] * 3

    def match(alert: str | None, status: str | None, labels: dict[str, str] | None = None) -> list[Any]:
        return [e for e in seen if e.matches(alert, labels, status)]

    assert len(match("ServiceDown", None)) == 2
    assert len(match("ServiceDown", "firing")) == 1
    assert match("ServiceDown", None, {"service": "auth"})[0].status == "resolved"
    assert match(None, "firing", {"service": "payments"})[1].labels["alertname"] == "ReplicaDown"
    assert match("ServiceDown", "firing", {"service": "orders"}) == []


def test_marks_give_probes_the_moment_of_the_last_fault() -> None:
    assert marks.since(12.5, 99.0) == 12.5
    assert marks.since("no-such-mark", 99.0) == 99.0
    at = marks.mark("fault", 1234.0)
    assert marks.since(None, 99.0) == at
    assert marks.since("fault", 99.0) == at


def test_var_values_parse_as_json_when_they_can() -> None:
    from chaoslab.cli.chaos import _parse_vars

    assert _parse_vars(["outage_s=8", "window=10s", "labels={\"service\": \"orders\"}", "x=true"]) == {
        "outage_s": 8, "window": "10s", "labels": {"service": "orders"}, "x": True}
