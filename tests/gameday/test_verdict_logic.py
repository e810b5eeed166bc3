"""Issue 19's verdicts judged on hand-built evidence (quick: no lab, no network, no sleeping), each shown to pass on
good evidence and to fail, or to become inconclusive, on bad: noise and inhibition (chaoslab/gameday/noise.py),
what the traces prove (traceproof.py), inconclusive evidence (pipeline.py, through experiment._judge_evidence) and
the burn-rate band of docs/detection.md's worked example (detection.py). tests/gameday/test_verdict_failures.py
shows the same verdicts failing on a real lab.

Where a function queries Prometheus it is given a FakePrometheus: a Prometheus whose instant and range queries are
answered from canned samples and series, and whose HTTP layer refuses to run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chaoslab.clients.prometheus import Prometheus, PrometheusError, Sample, Series
from chaoslab.gameday import detection, experiment, noise, pipeline, verdicts
from chaoslab.gameday.plan import AlertSpec, ExperimentSpec
from chaoslab.gameday.traceproof import Spans
from chaoslab.gameday.verdicts import Verdict
from chaoslab.lab.ports import SERVICES

pytestmark = pytest.mark.quick


class FakePrometheus(Prometheus):
    """Answers a query with the canned answer of the first key contained in the expression (nothing otherwise),
    or raises `fail`; records every expression it was asked."""

    def __init__(self, instant: dict[str, list[Sample]] | None = None,
                 ranges: dict[str, list[Series]] | None = None, fail: Exception | None = None) -> None:
        super().__init__("http://prometheus.invalid")
        self.instant, self.ranges, self.fail = instant or {}, ranges or {}, fail
        self.asked: list[str] = []

    def answer(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        raise AssertionError(f"a quick test must not reach Prometheus ({path})")

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        self.asked.append(expr)
        if self.fail is not None:
            raise self.fail
        return next((list(v) for k, v in self.instant.items() if k in expr), [])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        self.asked.append(expr)
        if self.fail is not None:
            raise self.fail
        return next((list(v) for k, v in self.ranges.items() if k in expr), [])


def by_name(found: list[Verdict]) -> dict[str, Verdict]:
    return {v.name: v for v in found}


# --- noise: pages against the budget, pages nobody expected ---------------------------------------------------

def alert(name: str, status: str = "firing", severity: str = "page", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, "severity": severity, **labels}}


def note(at: float, receiver: str, group: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    """One notification as the lab's webhook receiver records it (Alertmanager's payload plus received_at)."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {"received_at": at, "receiver": receiver, "groupKey": group, "status": "firing" if firing else "resolved",
            "alerts": list(alerts)}


PAYMENTS_DOWN = ExperimentSpec(
    experiment="payments-down", page_budget=2, allowed_pages=["AvailabilityBurnRateFast (orders)"],
    alerts=[AlertSpec(name="ServiceDown", labels={"service": "payments"}, max_time_to_detect_s=25)])

# payments stopped: ServiceDown pages, orders' availability burn pages (allowed), orders' breaker opens (a ticket),
# and ServiceDown resolves (a resolved-only notification is no noise)
OUTAGE = [
    note(1005.0, "page", "g-servicedown", alert("ServiceDown", service="payments", job="payments")),
    note(1006.0, "page", "g-burn", alert("AvailabilityBurnRateFast", service="orders")),
    note(1007.0, "ticket", "g-breaker", alert("CircuitBreakerOpen", severity="ticket", service="orders",
                                              upstream="payments")),
    note(1030.0, "page", "g-servicedown", alert("ServiceDown", "resolved", service="payments")),
]


def test_noise_counts_notifications_groups_and_pages_of_firing_alerts() -> None:
    counted = noise.count(OUTAGE)
    assert (counted.notifications, counted.groups, counted.pages) == (3, 3, 2)
    assert counted.paged == ["AvailabilityBurnRateFast (orders)", "ServiceDown (payments)"]
    assert [labels["alertname"] for labels in counted.paged_labels] == ["AvailabilityBurnRateFast", "ServiceDown"]


def test_pages_within_budget_and_all_expected_or_allowed_pass() -> None:
    found = by_name(verdicts.noise_verdicts("payments-down", PAYMENTS_DOWN, noise.count(OUTAGE), []))
    assert set(found) == {"pages within budget", "no unexpected page"}
    budget = found["pages within budget"]
    assert budget.passed and (budget.measured, budget.bound) == (2, 2)
    assert budget.detail == ("2 page notification(s) in 3 group(s) of 3 notification(s): "
                             "AvailabilityBurnRateFast (orders), ServiceDown (payments)")
    assert found["no unexpected page"].passed
    assert found["no unexpected page"].detail == "2 page notification(s), all expected or allowed"


def test_an_extra_page_over_the_budget_fails_it() -> None:
    repeated = [*OUTAGE, note(1012.0, "page", "g-servicedown", alert("ServiceDown", service="payments"))]
    found = by_name(verdicts.noise_verdicts("payments-down", PAYMENTS_DOWN, noise.count(repeated), []))
    budget = found["pages within budget"]
    assert not budget.passed and budget.status == "failed" and (budget.measured, budget.bound) == (3, 2)
    assert found["no unexpected page"].passed  # the same two alerts paged, one of them twice: only the budget fails


def test_a_page_neither_expected_nor_allowed_fails_the_experiment() -> None:
    spec = ExperimentSpec(experiment="payments-down", allowed_pages=["AvailabilityBurnRateFast (orders)"],
                          alerts=[AlertSpec(name="ServiceDown", labels={"service": "payments"},
                                            max_time_to_detect_s=25)])
    notes = [*OUTAGE,
             note(1008.0, "page", "g-burn", alert("AvailabilityBurnRateFast", service="gateway")),
             note(1009.0, "page", "g-servicedown", alert("ServiceDown", service="orders"))]  # not the expected one
    found = by_name(verdicts.noise_verdicts("payments-down", spec, noise.count(notes), []))
    assert "pages within budget" not in found  # no page_budget: not judged
    extra = found["no unexpected page"]
    assert not extra.passed and extra.status == "failed"
    assert extra.detail == ("paged without being expected or allowed: AvailabilityBurnRateFast (gateway), "
                            "ServiceDown (orders)")
    # allowed by the bare alert name, every instance of it is tolerated; the wrong ServiceDown still is not
    assert noise.unexpected_pages(noise.count(notes), [("ServiceDown", {"service": "payments"})],
                                  ["AvailabilityBurnRateFast"]) == ["ServiceDown (orders)"]


def test_a_page_to_the_ticket_receiver_is_no_page_and_unreadable_notifications_fail() -> None:
    tickets = [note(1007.0, "ticket", "g", alert("ServiceDown", severity="ticket", service="orders"))]
    counted = noise.count(tickets)
    assert (counted.notifications, counted.pages, counted.paged) == (1, 0, [])
    unread = verdicts.noise_verdicts("payments-down", PAYMENTS_DOWN, None, [])
    assert [(v.name, v.passed, v.detail) for v in unread] == [
        ("no unexpected page", False, "the receiver's notifications could not be read")]


# --- inhibition: firing in Prometheus, never notified ---------------------------------------------------------

def firing_series(name: str, start: int, end: int) -> dict[str, list[Series]]:
    """ALERTS{alertname=name, alertstate="firing"} over [start, end], at Prometheus' 1 s steps."""
    return {f'alertname="{name}"': [Series({"alertname": name, "alertstate": "firing"},
                                           [(float(t), 1.0) for t in range(start, end + 1)])]}


def inhibition_verdict(ranges: dict[str, list[Series]], notes: list[dict[str, Any]]) -> tuple[noise.Inhibition,
                                                                                                Verdict]:
    prometheus = FakePrometheus(ranges=ranges)
    found = noise.inhibition(prometheus, notes, "OutboxBacklogGrowing", "BrokerDown", 1000.0, 1060.0)
    assert 'ALERTS{alertname="BrokerDown", alertstate="firing"}' in prometheus.asked
    spec = ExperimentSpec(experiment="broker-outage", inhibited=[{"name": "OutboxBacklogGrowing", "by": "BrokerDown"}])
    judged = verdicts.noise_verdicts("broker-outage", spec, noise.count(notes), [found])
    return found, by_name(judged)["alert OutboxBacklogGrowing suppressed while BrokerDown fires"]


BROKER_DOWN = note(1012.0, "page", "g-broker", alert("BrokerDown", job="rabbitmq"))


def test_an_alert_firing_in_prometheus_but_never_notified_was_inhibited() -> None:
    ranges = {**firing_series("BrokerDown", 1010, 1040), **firing_series("OutboxBacklogGrowing", 1020, 1035)}
    late = note(1045.0, "ticket", "g-outbox", alert("OutboxBacklogGrowing", severity="ticket"))  # after the source
    found, verdict = inhibition_verdict(ranges, [BROKER_DOWN, late])
    assert (found.overlapped_s, found.notified) == (16.0, [])
    assert verdict.status == "passed"
    assert verdict.detail == "firing in Prometheus for 16 s while BrokerDown fired, and never notified"


def test_an_inhibited_alert_notified_while_its_source_fired_fails() -> None:
    ranges = {**firing_series("BrokerDown", 1010, 1040), **firing_series("OutboxBacklogGrowing", 1020, 1035)}
    leaked = note(1025.0, "ticket", "g-outbox", alert("OutboxBacklogGrowing", severity="ticket"))
    found, verdict = inhibition_verdict(ranges, [BROKER_DOWN, leaked])
    assert found.notified == [1025.0]
    assert verdict.status == "failed"
    assert verdict.detail == ("1 notification(s) of OutboxBacklogGrowing arrived while BrokerDown fired: the "
                              "inhibit rule did not hold")


@pytest.mark.parametrize("target_firing", [None, (1045, 1055)], ids=["never", "only-after-the-source"])
def test_an_alert_that_never_fired_with_its_source_leaves_inhibition_inconclusive(
        target_firing: tuple[int, int] | None) -> None:
    ranges = firing_series("BrokerDown", 1010, 1040)
    if target_firing is not None:
        ranges |= firing_series("OutboxBacklogGrowing", *target_firing)
    found, verdict = inhibition_verdict(ranges, [BROKER_DOWN])
    assert (found.overlapped_s, found.notified) == (0.0, [])
    assert verdict.status == "inconclusive" and not verdict.passed
    assert verdict.inconclusive == ("OutboxBacklogGrowing never fired in Prometheus while BrokerDown did: nothing "
                                    "to inhibit")
    assert verdicts.summary([verdict]) == {"total": 1, "passed": 0, "failed": 0, "inconclusive": 1}


# --- what the traces prove ------------------------------------------------------------------------------------

FAULT_START, FAULT_END = 1000.0, 1030.0
PAYMENTS_PORTS = {"payments": {24060}}


def span(trace: str, span_id: str, parent: str | None, service: str, kind: str, start_s: float, end_s: float,
         name: str = "", events: tuple[dict[str, Any], ...] = (), **attributes: Any) -> dict[str, Any]:
    """A span as services/kit/tracing.py writes it."""
    out = {"trace_id": trace, "span_id": span_id, "parent_id": parent, "name": name or f"{service} {kind}",
           "kind": kind, "service": service, "replica": f"{service}-1", "start_ns": int(start_s * 1e9),
           "end_ns": int(end_s * 1e9), "status": "unset", "error": None, "attributes": attributes}
    if events:
        out["events"] = list(events)
    return out


def refused(upstream: str = "payments") -> dict[str, Any]:
    return {"name": "circuit_open", "time_ns": 0, "attributes": {"upstream": upstream, "protocol": "grpc"}}


def write_spans(folder: Path, spans: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for service in {s["service"] for s in spans}:
        lines = [json.dumps(s) for s in spans if s["service"] == service]
        (folder / f"{service}-1.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def order(trace: str, at: float, events: tuple[dict[str, Any], ...] = ()) -> list[dict[str, Any]]:
    """A POST /orders journey: the gateway's request, its call to orders, orders' request span."""
    return [span(trace, f"{trace}-gw", None, "gateway", "server", at, at + 0.2, name="POST /api/orders"),
            span(trace, f"{trace}-gc", f"{trace}-gw", "gateway", "client", at + 0.01, at + 0.19),
            span(trace, f"{trace}-or", f"{trace}-gc", "orders", "server", at + 0.02, at + 0.18, name="POST /orders",
                 events=events)]


def call(trace: str, request: str, n: int, at: float, end: float, answered_until: float | None,
         upstream: str = "payments", port: int = 24060) -> list[dict[str, Any]]:
    """One attempt of orders' request span `request` to an upstream: a client span and, when the upstream answered,
    its server span (ending at `answered_until`)."""
    client = span(trace, f"{request}-c{n}", request, "orders", "client", at, end, **{"server.port": port})
    if answered_until is None:
        return [client]
    return [client, span(trace, f"{request}-s{n}", client["span_id"], upstream, "server", at + 0.001, answered_until)]


def judge_traces(tmp_path: Path, recorded: list[dict[str, Any]], **traces: Any) -> dict[str, Verdict]:
    folder = write_spans(tmp_path / "spans", recorded)
    during = Spans.between(folder, FAULT_START, FAULT_END)
    before = Spans.between(folder, FAULT_START - 30, FAULT_START)
    spec = ExperimentSpec(experiment="payments-down", traces=traces)
    return by_name(verdicts.trace_verdicts("payments-down", spec, during, before, PAYMENTS_PORTS))


BREAKER = "traces: orders → payments breaker engaged"


def test_a_breaker_that_refused_calls_during_the_fault_only_is_engaged(tmp_path: Path) -> None:
    spans = [*order("b1", 980.0), *order("d1", 1005.0, (refused(),)), *order("d2", 1006.0, (refused(),)),
             *order("d3", 1007.0, (refused("users"),))]  # another upstream's breaker: not this one
    found = judge_traces(tmp_path, spans, breaker=[{"service": "orders", "upstream": "payments"}])
    verdict = found[BREAKER]
    assert verdict.passed and verdict.measured == 2
    assert verdict.detail == "2 call(s) refused by the open breaker during the fault, 0 before it"


def test_a_breaker_open_before_the_fault_or_never_is_not_engaged(tmp_path: Path) -> None:
    hop = [{"service": "orders", "upstream": "payments"}]
    early = judge_traces(tmp_path / "early", [*order("b1", 980.0, (refused(),)), *order("d1", 1005.0, (refused(),))],
                         breaker=hop)[BREAKER]
    assert not early.passed and early.measured == 1
    assert early.detail == "1 call(s) refused by the open breaker during the fault, 1 before it"
    never = judge_traces(tmp_path / "never", [*order("b1", 980.0), *order("d1", 1005.0)], breaker=hop)[BREAKER]
    assert not never.passed and never.measured == 0


ATTEMPTS = "traces: orders → payments attempts per request"


def test_attempts_per_request_within_the_bound_pass_and_a_retry_storm_fails(tmp_path: Path) -> None:
    hop = [{"service": "orders", "upstream": "payments", "max": 3}]
    calm = [*order("t1", 1005.0),
            *[s for n in range(3) for s in call("t1", "t1-or", n, 1005.03 + n * 0.01, 1005.035 + n * 0.01, 1005.04)],
            *call("t1", "t1-or", 9, 1005.1, 1005.12, 1005.11, upstream="users", port=24020),  # not payments
            *order("t2", 1006.0), *call("t2", "t2-or", 0, 1006.03, 1006.04, 1006.035)]
    verdict = judge_traces(tmp_path / "calm", calm, max_attempts=hop)[ATTEMPTS]
    assert verdict.passed and (verdict.measured, verdict.bound) == (3, 3)
    assert verdict.detail == "over 2 request(s)"
    # payments down: four attempts of one request, none answered (known by the port they went to)
    storm = [*calm, *order("t3", 1007.0),
             *[s for n in range(4) for s in call("t3", "t3-or", n, 1007.03 + n * 0.02, 1007.04 + n * 0.02, None)]]
    verdict = judge_traces(tmp_path / "storm", storm, max_attempts=hop)[ATTEMPTS]
    assert not verdict.passed and (verdict.measured, verdict.bound) == (4, 3)
    assert verdict.detail == "over 3 request(s)"
    nothing = judge_traces(tmp_path / "none", order("t4", 1008.0), max_attempts=hop)[ATTEMPTS]
    assert not nothing.passed and nothing.detail == "no call to it was traced during the fault"


DEADLINE = "traces: orders → payments deadline reached the upstream"


def test_an_upstream_span_outliving_its_callers_attempt_fails_the_deadline(tmp_path: Path) -> None:
    hop = [{"service": "orders", "upstream": "payments"}]
    # orders gives up after 1 s; payments' handler unwinds 0.3 s later: within the slack
    stopped = [*order("t1", 1005.0), *call("t1", "t1-or", 0, 1005.03, 1006.03, 1006.33)]
    verdict = judge_traces(tmp_path / "stopped", stopped, deadline=hop)[DEADLINE]
    assert verdict.passed and (verdict.measured, verdict.bound, verdict.unit) == (0.3, 0.5, "s")
    # payments works on for 2 s after its caller gave up: the deadline never reached it
    wasted = [*stopped, *order("t2", 1010.0), *call("t2", "t2-or", 0, 1010.03, 1011.03, 1013.03)]
    verdict = judge_traces(tmp_path / "wasted", wasted, deadline=hop)[DEADLINE]
    assert not verdict.passed and verdict.measured == 2.0
    assert verdict.detail == "the upstream's span outlived its caller's by at most 2.00 s over 2 call(s)"


def test_named_spans_must_appear_and_no_span_at_all_fails(tmp_path: Path) -> None:
    spans = [*order("t1", 1005.0), span("t1", "t1-fb", "t1-or", "orders", "internal", 1005.05, 1005.06,
                                        name="pending payment fallback")]
    found = judge_traces(tmp_path / "seen", spans, spans=["pending payment fallback", "never ran"])
    assert found["traces: span 'pending payment fallback' seen"].passed
    assert not found["traces: span 'never ran' seen"].passed
    # spans only before the fault: nothing to judge, which fails
    empty = judge_traces(tmp_path / "empty", order("b1", 980.0), breaker=[{"service": "orders",
                                                                            "upstream": "payments"}])
    assert [(v.name, v.passed, v.detail) for v in empty.values()] == [
        ("traces", False, "no span was recorded while the fault lasted")]


# --- inconclusive evidence ------------------------------------------------------------------------------------

START, END = 1000.0, 1060.0  # a 60 s experiment: 30 scrapes of Prometheus by itself expected
GROUP = "/lab/prometheus/rules.yml;chaoslab-targets-native"


def health(missed: float = 0.0, slowest_s: float = 0.3, self_scrapes: float = 30.0,
           up: dict[str, float] | None = None, failed_notifications: float = 0.0) -> dict[str, list[Sample]]:
    """Prometheus' answers about itself over the experiment (keys: what chaoslab.gameday.pipeline asks)."""
    jobs = {"prometheus": 1.0, "alertmanager": 1.0, "locust": 1.0, "orders": 1.0, "payments": 1.0, **(up or {})}
    return {
        "prometheus_rule_group_iterations_missed_total": [Sample({"rule_group": GROUP}, missed)],
        "prometheus_rule_group_last_duration_seconds": [Sample({"rule_group": GROUP}, slowest_s)],
        'count_over_time(up{job="prometheus"}': [Sample({"job": "prometheus"}, self_scrapes)],
        "min_over_time(up[": [Sample({"job": job}, value) for job, value in jobs.items()],
        "alertmanager_notifications_failed_total": [Sample({"integration": "webhook"}, failed_notifications)],
        "prometheus_notifications_errors_total": [Sample({}, 0.0)],
        "prometheus_notifications_dropped_total": [Sample({}, 0.0)],
    }


def test_a_healthy_pipeline_impairs_nothing() -> None:
    prometheus = FakePrometheus(health(missed=1.0, up={"payments": 0.0}))  # one lost evaluation is noise;
    # payments is what the fault took down
    assert pipeline.prometheus_checks(prometheus, START, END, {"payments"}) == []
    assert pipeline.alertmanager_checks(prometheus, START, END) == []
    assert "increase(prometheus_rule_group_iterations_missed_total[60s])" in prometheus.asked


def test_missed_evaluations_and_self_scrape_gaps_impair_prometheus_with_their_reasons() -> None:
    prometheus = FakePrometheus(health(missed=5.0, slowest_s=3.5, self_scrapes=12.0,
                                       up={"orders": 0.0, "locust": 0.0, "alertmanager": 0.0},
                                       failed_notifications=2.0))
    found = pipeline.prometheus_checks(prometheus, START, END, {"payments"})
    assert [(i.affects, i.reason) for i in found] == [
        ("prometheus", "rule evaluation missed iterations: group chaoslab-targets-native missed 5 evaluation(s): "
                       "Prometheus was stopped or starved"),
        ("prometheus", "rule evaluation slower than its interval: group chaoslab-targets-native took 3.5 s"),
        ("prometheus", "gaps in Prometheus' own scrapes: 12 of about 30 scrapes of itself over 60s"),
        ("alertmanager", "a scrape outside the blast radius failed: job alertmanager (the fault targets payments)"),
        ("client", "a scrape outside the blast radius failed: job locust (the fault targets payments)"),
        ("prometheus", "a scrape outside the blast radius failed: job orders (the fault targets payments)"),
    ]
    assert [(i.affects, i.reason) for i in pipeline.alertmanager_checks(prometheus, START, END)] == [
        ("alertmanager", "notifications failed: 2 webhook notification(s) not delivered")]


def test_the_blast_radius_is_read_from_the_journals_actions() -> None:
    journal = {"run": [
        {"activity": {"type": "action", "provider": {"func": "stop_service", "arguments": {"service": "payments-2"}}}},
        {"activity": {"type": "action", "provider": {"func": "stop_broker", "arguments": {}}}},
        {"activity": {"type": "probe", "provider": {"func": "up", "arguments": {"service": "orders"}}}},
    ]}
    assert pipeline.blast_radius(journal) == {"payments", "rabbitmq"}
    # in a monolith lab a process fault takes every module of the process; a fault inside one module's calls not
    everything = set(SERVICES)
    assert pipeline.blast_radius(journal, "monolith") == everything | {"rabbitmq"}
    latency = {"run": [{"activity": {"type": "action", "provider": {"func": "add_latency",
                                                                    "arguments": {"service": "payments"}}}}]}
    assert pipeline.blast_radius(latency, "monolith") == {"payments"}


def gateway_telemetry(state_dir: Path, start: float, end: float) -> None:
    """The gateway's spans and log lines, one a second over [start, end]: load ran and telemetry flowed."""
    spans, logs = state_dir / "spans", state_dir / "logs"
    spans.mkdir(parents=True)
    logs.mkdir(parents=True)
    seconds = range(int(start), int(end) + 1)
    (spans / "gateway-1.jsonl").write_text("".join(
        json.dumps(span(f"t{t}", f"s{t}", None, "gateway", "server", t, t + 0.1)) + "\n" for t in seconds))
    (logs / "gateway-1.log").write_text("".join(
        json.dumps({"time": datetime.fromtimestamp(t, UTC).isoformat(), "msg": "request"}) + "\n" for t in seconds))


def judged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: FakePrometheus,
           telemetry: bool = True) -> experiment.ExperimentResult:
    """Verdicts of one experiment that passed on their own evidence, then judged against the pipeline's health as
    experiment.run does (chaoslab.gameday.experiment._judge_evidence)."""
    if telemetry:
        gateway_telemetry(tmp_path, START, END)
    monkeypatch.setattr(pipeline, "Prometheus", lambda url, timeout_s: prometheus)
    monkeypatch.setattr(experiment, "time", SimpleNamespace(time=lambda: END))
    suite = "payments-down"
    result = experiment.ExperimentResult(PAYMENTS_DOWN, 0, started=START, blast_radius=["payments"])
    result.verdicts = [Verdict(suite, 'alert ServiceDown{service="payments"} notified', True),
                       Verdict(suite, 'alert ServiceDown{service="payments"} time-to-detect', True, 9.9, 25, "s"),
                       Verdict(suite, "time-to-recover", True, 11.0, 60, "s"),
                       Verdict(suite, "client error ratio", True, 0.002, 0.01, "ratio"),
                       Verdict(suite, "pages within budget", True, 2, 2),
                       Verdict(suite, BREAKER, True, 5),
                       Verdict(suite, "data audit", True)]
    ctx = experiment.Context(tmp_path, tmp_path / "runs", {"prometheus_url": "http://prometheus.invalid"})
    experiment._judge_evidence(result, ctx)
    return result


def statuses(result: experiment.ExperimentResult) -> dict[str, str]:
    return {v.name: v.status for v in result.verdicts}


def test_verdicts_on_healthy_evidence_keep_their_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = judged(tmp_path, monkeypatch, FakePrometheus(health()))
    assert result.impairments == []
    assert set(statuses(result).values()) == {"passed"}


def test_a_stalled_prometheus_makes_the_verdicts_resting_on_it_inconclusive(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    result = judged(tmp_path, monkeypatch, FakePrometheus(health(missed=5.0, self_scrapes=12.0)))
    assert [i.what for i in result.impairments] == ["rule evaluation missed iterations",
                                                    "gaps in Prometheus' own scrapes"]
    assert statuses(result) == {
        'alert ServiceDown{service="payments"} notified': "inconclusive",
        'alert ServiceDown{service="payments"} time-to-detect': "inconclusive",
        "time-to-recover": "inconclusive",
        "client error ratio": "inconclusive",
        "pages within budget": "passed",
        BREAKER: "passed",
        "data audit": "passed",
    }
    recover = by_name(result.verdicts)["time-to-recover"]
    assert not recover.passed
    assert recover.inconclusive == ("rule evaluation missed iterations: group chaoslab-targets-native missed 5 "
                                    "evaluation(s): Prometheus was stopped or starved; gaps in Prometheus' own "
                                    "scrapes: 12 of about 30 scrapes of itself over 60s")
    assert verdicts.summary(result.verdicts) == {"total": 7, "passed": 3, "failed": 0, "inconclusive": 4}


def test_undelivered_notifications_make_the_alert_and_noise_verdicts_inconclusive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page Alertmanager failed to send is one the receiver never counted: a page budget that held may not have."""
    result = judged(tmp_path, monkeypatch, FakePrometheus(health(failed_notifications=2.0)))
    assert [i.affects for i in result.impairments] == ["alertmanager"]
    assert statuses(result) == {
        'alert ServiceDown{service="payments"} notified': "inconclusive",
        'alert ServiceDown{service="payments"} time-to-detect': "inconclusive",
        "time-to-recover": "passed",
        "client error ratio": "passed",
        "pages within budget": "inconclusive",
        BREAKER: "passed",
        "data audit": "passed",
    }


def test_a_prometheus_that_does_not_answer_leaves_alert_verdicts_inconclusive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    silent = FakePrometheus(fail=PrometheusError("Prometheus at http://prometheus.invalid does not answer"))
    result = judged(tmp_path, monkeypatch, silent)
    assert [(i.affects, i.what) for i in result.impairments] == [("prometheus", "Prometheus did not answer"),
                                                                 ("alertmanager", "Prometheus did not answer")]
    notified = by_name(result.verdicts)['alert ServiceDown{service="payments"} notified']
    assert notified.status == "inconclusive"
    assert notified.inconclusive.startswith("Prometheus did not answer: PrometheusError: Prometheus at ")


def test_a_gap_in_the_gateways_spans_makes_the_trace_verdicts_inconclusive(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result = judged(tmp_path, monkeypatch, FakePrometheus(health()), telemetry=False)
    assert [(i.affects, i.reason) for i in result.impairments] == [
        ("traces", "a gap in the gateway's spans: none for 60 s while load ran"),
        ("traces", "a gap in the gateway's log lines: none for 60 s while load ran")]
    assert statuses(result) == {
        'alert ServiceDown{service="payments"} notified': "passed",
        'alert ServiceDown{service="payments"} time-to-detect': "passed",
        "time-to-recover": "passed",
        "client error ratio": "passed",
        "pages within budget": "passed",
        BREAKER: "inconclusive",
        "data audit": "passed",
    }
    assert by_name(result.verdicts)[BREAKER].inconclusive == ("a gap in the gateway's spans: none for 60 s while "
                                                              "load ran; a gap in the gateway's log lines: none for "
                                                              "60 s while load ran")


# --- detection: docs/detection.md's worked examples -----------------------------------------------------------

def test_servicedown_band_of_the_worked_example() -> None:
    prediction = detection.predict("ServiceDown", {"service": "payments"}, detection.Pipeline.native())
    assert prediction is not None and prediction.model == "target-down"
    assert (prediction.condition_s, prediction.hold_s) == ((0.0, 4.0), 4.0)
    assert prediction.band == (5.0, 17.5)
    assert prediction.judge(9.9) == (True, "within the 5.0-17.5 s the rule promises")
    late, why = prediction.judge(45.0)  # the rule's `for` raised to 40 s
    assert not late and why.startswith("later than the rule promises (45.0 s > 17.5 s)")


def burn(r: float, r0: dict[str, float]) -> FakePrometheus:
    """Prometheus' view of orders' latency SLO: the bad share r since the injection, and what each recorded window
    held at the injection."""
    recorded = {f'slo:sli_error:ratio_rate{w}{{slo="orders-latency"}}': [Sample({"slo": "orders-latency"}, v)]
                for w, v in r0.items()}
    return FakePrometheus({**recorded, 'service="orders"': [Sample({}, r)]})


def test_the_burn_rate_crossing_formula() -> None:
    # t = (th - R0) W / (r - R0): the 10 s window of th = 0.144 at r = 41% from a clean start
    assert detection.crossing(0.144, 10, 0.0, 0.41) == pytest.approx(3.512, abs=1e-3)
    assert detection.crossing(0.144, 120, 0.2, 0.41) == 0.0  # already over th: at once
    assert detection.crossing(0.144, 120, 0.0, 0.1) is None  # the fault never takes it over th


def test_the_burn_rate_band_of_the_worked_example() -> None:
    """cpu-burn-orders after payments-latency: orders' latency SLO (budget 1%), LatencyBurnRateFast's pairs 2m/10s
    at 14.4x (th 0.144) and 12m/1m at 6x (th 0.06); r = 41%. The 2-minute window held 12% slow requests at the
    injection, the others none: the 2m/10s pair holds after about 9.8 s, band [10.3, 32.7] s, 12.7 s measured."""
    pipeline_ = detection.Pipeline.native()
    prometheus = burn(0.41, {"2m": 0.1205, "10s": 0.0, "12m": 0.0, "1m": 0.0})
    start, end = 1000.0, 1012.7
    prediction = detection.predict("LatencyBurnRateFast", {"service": "orders"}, pipeline_, prometheus=prometheus,
                                   start=start, end=end)
    assert prediction is not None and prediction.model == "burn-rate" and prediction.hold_s == 4.0
    first = detection.crossing(0.144, 120, 0.1205, 0.41)
    assert first == pytest.approx(9.74, abs=0.01)
    assert prediction.condition_s == (round(0.75 * first - 2, 3), round(1.25 * first + 4, 3))
    lo, hi = prediction.band
    assert (round(lo, 1), round(hi, 1)) == (10.3, 32.7)
    assert prediction.judge(12.7)[0]
    assert "41.0% of orders-latency's requests bad: its windows cross their thresholds after 9.7 s" in prediction.how
    # without the history (every window clean at the injection) the 2m window needs 42 s: the band then starts at
    # 34.6 s and blames the 12.7 s measurement, which was right
    clean = detection.predict("LatencyBurnRateFast", {"service": "orders"}, pipeline_,
                              prometheus=burn(0.41, {"2m": 0.0, "10s": 0.0, "12m": 0.0, "1m": 0.0}),
                              start=start, end=end)
    assert clean is not None and "after 42.1 s" in clean.how
    assert round(clean.band[0], 1) == 34.6
    ok, why = clean.judge(12.7)
    assert not ok and why.startswith("earlier than the rule allows")
    # a fault whose bad share stays under every threshold promises nothing
    assert detection.predict("LatencyBurnRateFast", {"service": "orders"}, pipeline_,
                             prometheus=burn(0.05, {"2m": 0.0, "10s": 0.0, "12m": 0.0, "1m": 0.0}),
                             start=start, end=end) is None
