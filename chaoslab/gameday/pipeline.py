"""Watching the telemetry pipeline itself while an experiment runs: a verdict is only as good as the evidence it
was judged on. When Prometheus was starved or stopped, a scrape outside the fault's blast radius failed, an
alert could not be delivered, or spans and logs stopped arriving, the verdicts that rest on that evidence become
inconclusive (chaoslab.gameday.verdicts.make_inconclusive) with the reason: never passed, never failed.

What is checked over the experiment's window, and which verdicts it impairs:
- Prometheus (alerts, time-to-recover, the client's view, detection predictions): rule groups that missed
  iterations (`prometheus_rule_group_iterations_missed_total`, counted when evaluation could not keep its pace:
  a stopped or starved process), evaluations slower than their interval
  (`prometheus_rule_group_last_duration_seconds`), gaps in Prometheus' scrapes of itself, and failed scrapes of
  jobs outside the blast radius (`up == 0`; a fault may take down what it targets, nothing else).
- Alertmanager (alert verdicts): failed notifications (`alertmanager_notifications_failed_total`) and alerts
  Prometheus could not send (`prometheus_notifications_errors_total`, `..._dropped_total`).
- Locust's exporter (the client's view): failed scrapes of job locust.
- Spans and logs of the gateway, the entry of every request (trace evidence): a gap longer than GAP_S while
  load ran.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaoslab.clients.prometheus import Prometheus

GAP_S = 15.0  # with load running, the gateway writes spans and log lines several times a second
SCRAPE_S = 2.0
SELF_SCRAPE_SHARE = 0.75  # fewer of Prometheus' own scrapes than this share of the expected count is a gap
SLOW_EVALUATION_S = 2.0  # the native groups' interval
# One evaluation lost to a busy moment is noise on a 2-core machine; two in a row (4 s natively) is a stall.
MISSED_EVALUATIONS = 2
PROMETHEUS, ALERTMANAGER, CLIENT, TRACES = "prometheus", "alertmanager", "client", "traces"
ENTRY = "gateway"  # the service every request passes


@dataclass(frozen=True)
class Impairment:
    affects: str  # PROMETHEUS, ALERTMANAGER, CLIENT or TRACES
    what: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def reason(self) -> str:
        return f"{self.what}: {self.detail}"


def _window(start: float, end: float) -> str:
    return f"{max(1, math.ceil(end - start))}s"


def _values(prometheus: Prometheus, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for s in prometheus.query(expr, at=at)]


def prometheus_checks(prometheus: Prometheus, start: float, end: float, blast_radius: set[str]) -> list[Impairment]:
    window = _window(start, end)
    found = []
    for labels, value in _values(prometheus, f"increase(prometheus_rule_group_iterations_missed_total[{window}])",
                                 end):
        if value >= MISSED_EVALUATIONS:
            found.append(Impairment(PROMETHEUS, "rule evaluation missed iterations",
                                    f"group {labels.get('rule_group', '?').rsplit(';', 1)[-1]} missed "
                                    f"{value:.0f} evaluation(s): Prometheus was stopped or starved"))
    for labels, value in _values(prometheus, f"max_over_time(prometheus_rule_group_last_duration_seconds"
                                             f"[{window}])", end):
        if value > SLOW_EVALUATION_S:
            found.append(Impairment(PROMETHEUS, "rule evaluation slower than its interval",
                                    f"group {labels.get('rule_group', '?').rsplit(';', 1)[-1]} took {value:.1f} s"))
    expected = (end - start) / SCRAPE_S
    scrapes = _values(prometheus, f'count_over_time(up{{job="prometheus"}}[{window}])', end)
    count = scrapes[0][1] if scrapes else 0.0
    if expected >= 4 and count < SELF_SCRAPE_SHARE * expected:
        found.append(Impairment(PROMETHEUS, "gaps in Prometheus' own scrapes",
                                f"{count:.0f} of about {expected:.0f} scrapes of itself over {window}"))
    for labels, value in _values(prometheus, f"min by (job) (min_over_time(up[{window}]))", end):
        job = labels.get("job", "?")
        if value < 1 and job not in blast_radius and job != "prometheus":
            affects = CLIENT if job == "locust" else ALERTMANAGER if job == "alertmanager" else PROMETHEUS
            found.append(Impairment(affects, "a scrape outside the blast radius failed",
                                    f"job {job} (the fault targets {', '.join(sorted(blast_radius)) or 'nothing'})"))
    return found


def alertmanager_checks(prometheus: Prometheus, start: float, end: float) -> list[Impairment]:
    window = _window(start, end)
    found = []
    for labels, value in _values(prometheus, f"sum by (integration) "
                                             f"(increase(alertmanager_notifications_failed_total[{window}]))", end):
        if value >= 1:
            found.append(Impairment(ALERTMANAGER, "notifications failed",
                                    f"{value:.0f} {labels.get('integration', '')} notification(s) not delivered"))
    for metric in ("prometheus_notifications_errors_total", "prometheus_notifications_dropped_total"):
        for _, value in _values(prometheus, f"sum(increase({metric}[{window}]))", end):
            if value >= 1:
                found.append(Impairment(ALERTMANAGER, "alerts not sent to Alertmanager",
                                        f"{metric}: {value:.0f}"))
    return found


def _gaps(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without a timestamp."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def span_times(spans_dir: Path, service: str, start: float) -> list[float]:
    times = []
    for path in spans_dir.glob(f"{service}-*.jsonl"):
        try:
            for line in path.read_text(errors="replace").splitlines():
                try:
                    span = json.loads(line)
                except ValueError:
                    continue
                t = float(span.get("start_time_unix_nano") or span.get("start_ns") or 0) / 1e9
                if t >= start:
                    times.append(t)
        except OSError:
            continue
    return times


def log_times(logs_dir: Path, service: str, start: float) -> list[float]:
    from datetime import datetime

    times = []
    for path in logs_dir.glob(f"{service}-*.log"):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
                t = datetime.fromisoformat(str(record.get("time")).replace("Z", "+00:00")).timestamp()
            except (ValueError, TypeError, AttributeError):
                continue
            if t >= start:
                times.append(t)
    return times


def telemetry_checks(spans_dir: Path, logs_dir: Path, start: float, end: float,
                     blast_radius: set[str]) -> list[Impairment]:
    if ENTRY in blast_radius or end - start < GAP_S:
        return []
    found = []
    for kind, times in (("spans", span_times(spans_dir, ENTRY, start)), ("log lines", log_times(logs_dir, ENTRY,
                                                                                                start))):
        gap = _gaps(times, start, end)
        if gap > GAP_S:
            found.append(Impairment(TRACES, f"a gap in the {ENTRY}'s {kind}",
                                    f"none for {gap:.0f} s while load ran"))
    return found


# Actions whose fault takes down the broker (its job is then in the blast radius), and the arguments that name
# what a fault targets.
BROKER_ACTIONS = ("stop_broker", "cut_broker", "partition")
TARGET_ARGUMENTS = ("service", "target", "services", "peers", "source")
# Faults on a process: in a monolith lab the process holds every module, so they take all of them down.
PROCESS_ACTIONS = ("kill_replica", "kill_service", "pause_replica", "stop_service")


def blast_radius(journal: dict[str, Any], topology: str = "microservices") -> set[str]:
    """The jobs an experiment's method may take down: every service its actions name, the broker when an action
    acts on it, and the services a broker fault cuts off; in a monolith lab, every module when a process fault
    names one (killing "payments" kills the replica holding all six)."""
    from chaoslab.lab.ports import SERVICES

    found: set[str] = set()
    for run in journal.get("run") or []:
        activity = run.get("activity") or {}
        if activity.get("type") != "action":
            continue
        provider = activity.get("provider") or {}
        if provider.get("func") in BROKER_ACTIONS:
            found.add("rabbitmq")
        whole_process = topology == "monolith" and provider.get("func") in PROCESS_ACTIONS
        for key in TARGET_ARGUMENTS:
            value = (provider.get("arguments") or {}).get(key)
            for item in value if isinstance(value, list) else [value]:
                name = str(item).split("-")[0] if item is not None else ""
                if name in SERVICES:
                    found.update(SERVICES if whole_process else [name])
    return found


def watch(prometheus_url: str, start: float, end: float, blast_radius: set[str], spans_dir: Path | None = None,
          logs_dir: Path | None = None) -> list[Impairment]:
    """Everything that impaired the evidence between `start` and `end`; a Prometheus that cannot answer is itself
    an impairment of everything it would have told."""
    prometheus = Prometheus(prometheus_url, timeout_s=15.0)
    try:
        found = prometheus_checks(prometheus, start, end, blast_radius) + alertmanager_checks(prometheus, start, end)
    except Exception as exc:  # noqa: BLE001 - any way Prometheus fails to answer impairs what it would have said
        found = [Impairment(PROMETHEUS, "Prometheus did not answer", f"{exc.__class__.__name__}: {exc}"),
                 Impairment(ALERTMANAGER, "Prometheus did not answer", "its view of Alertmanager is unknown")]
    if spans_dir is not None and logs_dir is not None:
        found += telemetry_checks(spans_dir, logs_dir, start, end, blast_radius)
    return found
