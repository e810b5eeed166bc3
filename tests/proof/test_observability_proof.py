"""The observability contract proven against the real lab: every rule and panel expression on the real
Prometheus after real traffic, one order as one trace across five services, and ServiceDown travelling from
Prometheus through the real Alertmanager to the lab's webhook receiver within its computed bound."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from chaoslab.clients import shop
from chaoslab.clients.prometheus import Prometheus
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.supervisor import Supervisor
from chaoslab.observability import all_expressions
from chaoslab.observability.traces import spans_in, spans_of
from support.waiting import eventually

pytestmark = pytest.mark.lab

ORDER = shop.order(("sticker", 1))


def _customer(gw: str) -> dict[str, str]:
    email = f"proof-{uuid.uuid4().hex[:10]}@example.com"
    assert requests.post(f"{gw}/api/auth/register", json={"email": email, "password": "proof password 1"},
                         timeout=10).status_code == 201
    token = requests.post(f"{gw}/api/auth/login", json={"email": email, "password": "proof password 1"},
                          timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _query(lab: dict[str, Any], expr: str) -> list[Any]:
    """The result as Prometheus gave it (NaN samples kept: an expression that returns NaN returns data)."""
    body = Prometheus(lab["prometheus_url"]).query_answer(expr)
    assert body.get("status") == "success", f"{expr}: {body.get('error')}"
    return list(body["data"]["result"])


def _wait(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    return eventually(predicate, timeout_s, interval_s, what)


def test_every_rule_and_panel_expression_returns_data_after_load(lab: dict[str, Any]) -> None:
    gw = lab["gateway_url"]
    auth = _customer(gw)
    # The traffic must come after Prometheus' first scrape of every replica (it starts last and discovers its
    # targets ~5 s later): a counter first seen already at its final value has no rate.
    _wait(lambda: len(_query(lab, "up{job=~\"gateway|orders|users|payments|notifications|auth\"} == 1")) >= 6,
          60, "Prometheus scraping every service")
    for _ in range(15):
        assert requests.post(f"{gw}/api/orders", json=ORDER, timeout=15,
                             headers={**auth, "Idempotency-Key": uuid.uuid4().hex}).status_code == 201
        requests.get(f"{gw}/api/users/me", headers=auth, timeout=10)
        requests.get(f"{gw}/api/notifications", headers=auth, timeout=10)
    # Rates need two scrapes of the traffic inside their window: wait until Prometheus has seen it.
    _wait(lambda: _query(lab, "sum(rate(orders_placed_total[10s])) > 0"), 60, "orders in Prometheus")
    _wait(lambda: _query(lab, 'slo:sli_error:ratio_rate10s{slo="orders-availability"}')
          or _query(lab, "count({__name__=~\"slo:.*\"})"), 60, "the recording rules' first results")
    time.sleep(4)  # two more evaluations: the recorded series that feed other rules have samples too

    empty, errors, allowed = [], [], 0
    for expression in all_expressions():
        try:
            result = _query(lab, expression.executable())
        except AssertionError as exc:
            errors.append(f"{expression.origin}: {expression.name}: {exc}")
            continue
        if result:
            continue
        if expression.expected_empty:
            allowed += 1
        else:
            empty.append(f"{expression.origin}: {expression.name}: {expression.executable()}")
    assert not errors, "expressions Prometheus rejected:\n" + "\n".join(errors)
    assert not empty, f"{len(empty)} expressions returned no data after load:\n" + "\n".join(empty)
    print(f"{len(all_expressions())} expressions ran; {allowed} empty as expected (alerts not firing etc.)")


def test_one_order_is_one_trace_across_five_services(lab: dict[str, Any]) -> None:
    gw = lab["gateway_url"]
    auth = _customer(gw)
    resp = requests.post(f"{gw}/api/orders", json=ORDER, timeout=15,
                         headers={**auth, "Idempotency-Key": uuid.uuid4().hex})
    assert resp.status_code == 201
    trace_id = resp.headers["X-Trace-Id"]
    spans_dir = LabPaths.of(lab["state_dir"]).spans
    wanted = {"gateway", "orders", "users", "payments", "notifications"}
    def complete() -> list[dict[str, Any]]:
        # each replica exports in its own batches (about every second): wait until every hop and every
        # parent has arrived; a parent that never arrives fails the wait
        spans = spans_of(spans_dir, trace_id)
        ids = {x["span_id"] for x in spans}
        whole = all(x["parent_id"] is None or x["parent_id"] in ids for x in spans)
        return spans if spans and whole and wanted <= {x["service"] for x in spans} else []

    spans = _wait(complete, 30, f"every span of {trace_id}, from {wanted}")
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] is None]
    assert len(roots) == 1 and roots[0]["service"] == "gateway" and roots[0]["kind"] == "server", roots
    orphans = [s for s in spans if s["parent_id"] is not None and s["parent_id"] not in by_id]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]
            chain.append(span["service"])
        return chain

    # Each hop's server (or consumer) span descends from its caller's span.
    for service, caller in (("orders", "gateway"), ("users", "orders"), ("payments", "orders"),
                            ("notifications", "orders")):
        entry = min((s for s in spans if s["service"] == service), key=lambda s: s["start_ns"])
        assert caller in ancestors(entry), f"{service}'s first span does not descend from {caller}: {entry}"
    consumer = [s for s in spans if s["service"] == "notifications" and s["kind"] == "consumer"]
    assert consumer, "no consumer span in notifications: the trace context did not cross RabbitMQ"
    assert by_id[consumer[0]["parent_id"]]["service"] == "orders"


def _interval_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(text)


def _detection_bound_s(lab: dict[str, Any], service: str) -> float:
    """scrape interval + evaluation interval (twice: the pending and the firing evaluation) + `for` +
    Alertmanager's group_wait, read from the lab's own configuration files."""
    paths = LabPaths.of(lab["state_dir"])
    prom = yaml.safe_load(paths.prometheus_yml.read_text())["global"]
    am = yaml.safe_load(paths.alertmanager_yml.read_text())["route"]
    rules_file = next(Path(f) for f in yaml.safe_load(paths.prometheus_yml.read_text())["rule_files"])
    rule = next(r for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]
                if r.get("alert") == "ServiceDown" and r["labels"].get("service") == service)
    return (_interval_s(prom["scrape_interval"]) + 2 * _interval_s(prom["evaluation_interval"])
            + _interval_s(rule.get("for", "0s")) + _interval_s(am.get("group_wait", "30s")))


def _service_down_notes(lab: dict[str, Any], since: float, status: str) -> list[dict[str, Any]]:
    body = requests.get(f"{lab['webhook_url']}/notifications", params={"since": since}, timeout=5).json()
    found = []
    for note in body["notifications"]:
        for alert in note.get("alerts", []):
            labels = alert.get("labels", {})
            if labels.get("alertname") == "ServiceDown" and labels.get("service") == "payments" \
                    and alert.get("status") == status:
                found.append(note)
    return found


def test_service_down_reaches_the_webhook_within_its_bound_and_resolves(lab: dict[str, Any]) -> None:
    bound = _detection_bound_s(lab, "payments")
    slack = 3.0  # HTTP hops and a busy 2-core machine; printed beside the measurement
    sv = Supervisor(LabPaths.of(lab["state_dir"]))
    replicas = [r["name"] for r in lab["services"]["payments"]["replicas"]]
    since = time.time()
    started = time.monotonic()
    for name in replicas:
        sv.stop_group(name)  # stopped, not killed: supervisord would restart a killed one at once
    try:
        notes = _wait(lambda: _service_down_notes(lab, since, "firing"), bound + 30, "ServiceDown at the webhook",
                      interval_s=0.2)
        detected = notes[0]["received_at"] - since
        print(f"time-to-detect ServiceDown(payments): {detected:.1f} s (bound {bound:.1f} s + {slack:.0f} s slack)")
        assert detected <= bound + slack, f"detected after {detected:.1f} s, bound {bound:.1f} s"
        firing = _query(lab, 'ALERTS{alertname="ServiceDown", service="payments", alertstate="firing"}')
        assert firing, "Prometheus does not show ServiceDown firing"
    finally:
        for name in replicas:
            sv.start(name)
    recovered_at = time.time()
    _wait(lambda: _service_down_notes(lab, recovered_at, "resolved"), 60, "ServiceDown resolved", interval_s=0.5)
    assert time.monotonic() - started < 180
    for name in replicas:  # leave the shared lab as it was: every replica ready again
        _wait(lambda n=name: sv.process(n)["statename"] == "RUNNING", 60, f"{name} running")
    _wait(lambda: all(requests.get(r["admin_url"] + "/health/ready", timeout=2).ok
                      for r in lab["services"]["payments"]["replicas"]), 60, "payments ready")


def test_prometheus_stores_exemplars_that_name_real_traces(lab: dict[str, Any]) -> None:
    gw = lab["gateway_url"]
    auth = _customer(gw)
    started = time.time()
    trace_ids = set()
    for _ in range(5):
        resp = requests.post(f"{gw}/api/orders", json=ORDER, timeout=15,
                             headers={**auth, "Idempotency-Key": uuid.uuid4().hex})
        trace_ids.add(resp.headers["X-Trace-Id"])

    def exemplars() -> list[str]:
        found = Prometheus(lab["prometheus_url"]).exemplars(
            'http_server_request_duration_seconds_bucket{service="gateway", route="/api/orders"}',
            started - 5, time.time() + 5)
        return [e["labels"]["trace_id"] for series in found for e in series["exemplars"]]

    stored = _wait(lambda: set(exemplars()) & trace_ids, 30, "exemplars of the orders just placed")
    spans_dir = LabPaths.of(lab["state_dir"]).spans
    some = next(iter(stored))
    assert _wait(lambda: spans_of(spans_dir, some), 15, f"the spans of exemplar trace {some}")


def test_trace_and_log_commands_find_one_request(lab: dict[str, Any]) -> None:
    from support.lab import run_chaoslab

    gw = lab["gateway_url"]
    auth = _customer(gw)
    resp = requests.post(f"{gw}/api/orders", json=ORDER, timeout=15,
                         headers={**auth, "Idempotency-Key": uuid.uuid4().hex})
    trace_id = resp.headers["X-Trace-Id"]
    state = ["--state-dir", lab["state_dir"]]

    replicas = ("gateway-", "orders-", "users-", "payments-", "notifications-")

    def waterfall() -> str:
        # each replica exports its spans in batches about every second: wait for every hop's
        done = run_chaoslab("trace", trace_id, *state)
        return done.stdout if done.returncode == 0 and all(r in done.stdout for r in replicas) else ""

    out = _wait(waterfall, 30, "chaoslab trace to show every hop")
    assert "POST /api/orders" in out and "Charge" in out, out
    logs = run_chaoslab("logs", "--trace", trace_id, *state)
    assert logs.returncode == 0
    for replica in ("gateway-1", "orders-1", "payments-"):  # one request's lines from every hop
        assert replica in logs.stdout, logs.stdout
    slowest = run_chaoslab("traces", "--slowest", "50", "--since", "120", "--ids", *state)
    assert trace_id in slowest.stdout.split()
    unknown = run_chaoslab("trace", "0" * 32, *state)
    assert unknown.returncode == 1 and "no span" in unknown.stderr
    garbage = run_chaoslab("trace", "not-a-trace", *state)
    assert garbage.returncode == 2 and "not a trace id" in garbage.stderr


def test_every_trace_starts_with_a_request(lab: dict[str, Any]) -> None:
    """Housekeeping makes no traces of its own: the outbox relay's polls, setup and the admin port (probes,
    audits) run untraced, so every root span is a request's server span and `chaoslab traces --slowest` lists
    requests, not lock waits."""
    gw = lab["gateway_url"]
    auth = _customer(gw)
    for _ in range(3):
        assert requests.post(f"{gw}/api/orders", json=ORDER, timeout=15,
                             headers={**auth, "Idempotency-Key": uuid.uuid4().hex}).status_code == 201
    admin = {"Authorization": f"Bearer {lab['admin_token']}"}
    for service in ("orders", "payments", "notifications"):
        for replica in lab["services"][service]["replicas"]:
            assert requests.get(f"{replica['admin_url']}/health/ready", timeout=5).status_code == 200
            # the data audit reads every table of the service: operator tooling, not a request of the shop
            assert requests.get(f"{replica['admin_url']}/admin/audit", headers=admin, timeout=10).status_code == 200
    time.sleep(3)  # several relay polls, and a batch export (every second) of every replica after them
    spans_dir = LabPaths.of(lab["state_dir"]).spans
    spans = list(spans_in(spans_dir))
    roots = [s for s in spans if s["parent_id"] is None]
    assert any(s["name"] == "POST /api/orders" for s in roots), "no order's root span was exported"
    housekeeping = [f"{s['service']}: {s['kind']} {s['name']}" for s in roots if s["kind"] != "server"]
    assert not housekeeping, f"{len(housekeeping)} traces start outside a request: {sorted(set(housekeeping))}"
