"""The alert and recording rule catalogue, built from slos.py for one profile.

Each alert is written once with standard (production) durations; the profile scales them (profiles.py).
Annotations carry template values so a notification says which service, replica or queue, and how bad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from chaoslab.observability import slos
from chaoslab.observability.profiles import Profile, parse_duration

# runbook_url is a path relative to the repository root (see alerts/README.md): the lab's report and CLI
# resolve it against the checkout, a browser against the repository's web address.
RUNBOOK_DIR = "docs/runbooks"

Severity = Literal["page", "ticket"]


def runbook_url(alertname: str) -> str:
    return f"{RUNBOOK_DIR}/{alertname}.md"


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"record": self.record, "expr": self.expr, "labels": dict(self.labels)}


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    hold: str  # the profile's `for:`
    severity: Severity
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.hold,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": runbook_url(self.alert),
            },
        }


def slo_recording_rules(profile: Profile, windows: tuple[str, ...] = slos.BURN_WINDOWS) -> list[RecordingRule]:
    """Every SLO's error ratio over each of `windows` (every burn-rate window by default), as the profile scales it."""
    return [
        RecordingRule(
            record=slos.recorded_error_ratio(profile.window(window)),
            expr=item.error_ratio(profile.window(window)),
            labels={"slo": item.name, "service": item.service, "slo_kind": item.kind},
        )
        for window in windows
        for item in slos.SLOS
    ]


def _burn_name(item: slos.SLO, alert: slos.BurnAlert) -> str:
    return f"{item.kind.capitalize()}BurnRate{alert.suffix}"


def burn_rate_alerts(profile: Profile, which: tuple[slos.BurnAlert, ...] = slos.BURN_ALERTS) -> list[AlertRule]:
    rules = []
    for alert in which:
        pairs = " or ".join(
            f"{profile.window(p.long)}/{profile.window(p.short)} at {p.factor:g}x" for p in alert.windows
        )
        for item in slos.SLOS:
            failed = ("failed with a server error" if item.kind == "availability"
                      else f"took longer than {item.threshold_s:g}s")
            rules.append(AlertRule(
                alert=_burn_name(item, alert),
                expr=slos.burn_condition(item, alert, profile.window),
                hold=profile.hold(alert.hold),
                severity=alert.severity,
                labels={"service": item.service},
                summary=f"{item.service} is burning its {item.kind} error budget ({alert.suffix.lower()} burn)",
                description=(
                    f"{{{{ $value | humanizePercentage }}}} of {item.service} requests {failed} over the long "
                    f"window; the SLO allows {item.error_budget * 100:g}%. Windows: {pairs}."
                ),
            ))
    return rules


ABSENT_GRACE_S = 10


def service_alerts(profile: Profile) -> list[AlertRule]:
    """Target health: a whole service, one replica (down, or restarted), the broker."""
    # Only where `for:` is shorter than Prometheus' first discovery (native): see slos._after_warmup.
    grace = ABSENT_GRACE_S if profile.name == "native" else None
    rules = [
        AlertRule(
            alert="ServiceDown",
            expr=slos.service_down(service, grace),
            hold=profile.hold("2m"),
            severity="page",
            labels={"service": service},
            summary=f"{service} is down: no replica answers",
            description=(
                f"No target of job {{{{ $labels.job }}}} has answered its scrape for {profile.hold('2m')} "
                f"(every replica down, or none discovered). Requests that need {service} fail."
            ),
        )
        for service in slos.SERVICES
    ]
    rules.append(AlertRule(
        alert="ReplicaDown",
        expr=slos.replica_down(),
        hold=profile.hold("2m"),
        severity="ticket",
        summary="{{ $labels.replica }} of {{ $labels.service }} is down",
        description=(
            "Replica {{ $labels.replica }} ({{ $labels.instance }}) has failed its scrape for "
            f"{profile.hold('2m')} while other {{{{ $labels.service }}}} replicas answer: capacity is reduced."
        ),
    ))
    restart_window = slos.RESTART_WINDOWS[profile.name]
    rules.append(AlertRule(
        alert="ReplicaRestarted",
        expr=slos.replica_restarted(restart_window),
        # A changed start time is a fact, not a noisy measurement: nothing to wait out. The window, not `for`,
        # keeps it firing (natively about a minute after the restart).
        hold=profile.hold("0s"),
        severity="ticket",
        summary="{{ $labels.replica }} of {{ $labels.service }} restarted",
        description=(
            "Replica {{ $labels.replica }} ({{ $labels.instance }}) started again {{ $value }} time(s) within the "
            f"last {restart_window}: it crashed, was OOM-killed by the kernel or killed, and its supervisor "
            "brought it back, often before ReplicaDown could see it down. Its in-flight requests failed and its "
            "unacknowledged messages were redelivered; restarts again and again are a crash loop."
        ),
    ))
    rules.append(AlertRule(
        alert="ClockSkew",
        expr=slos.clock_skew(),
        hold=profile.hold("1m"),
        severity="ticket",
        summary="the clock of {{ $labels.replica }} is off by {{ $value | humanizeDuration }}",
        description=(
            "The wall clock of {{ $labels.replica }} ({{ $labels.service }}) differs from Prometheus' by "
            f"{{{{ $value | humanizeDuration }}}} (more than {slos.CLOCK_SKEW_THRESHOLD_S} s) for "
            f"{profile.hold('1m')}: tokens it verifies or issues look expired or not yet valid beyond the 60 s "
            "leeway (401 token-expired / token-not-yet-valid), and its logs' times are wrong."
        ),
    ))
    rules.append(AlertRule(
        alert="BrokerDown",
        expr=slos.broker_down(grace),
        hold=profile.hold("1m"),
        severity="page",
        summary="RabbitMQ is down",
        description=(
            "The broker (job {{ $labels.job }}) has not answered its scrape for "
            f"{profile.hold('1m')}: orders' events pile up in the outbox and notifications stop."
        ),
    ))
    return rules


def capacity_alerts(profile: Profile) -> list[AlertRule]:
    window = profile.window("5m")
    return [
        AlertRule(
            alert="PaymentsSaturated",
            expr=slos.payments_saturated(window),
            hold=profile.hold("5m"),
            severity="ticket",
            summary="payments is using {{ $value | humanizePercentage }} of its concurrency limit",
            description=(
                f"In-flight charges averaged over {window} are {{{{ $value | humanizePercentage }}}} of the "
                "summed concurrency limit of live payments replicas (threshold "
                f"{slos.PAYMENTS_SATURATION_THRESHOLD:.0%}): new charges queue or are refused "
                "(RESOURCE_EXHAUSTED). Add replicas."
            ),
        ),
        AlertRule(
            alert="CircuitBreakerOpen",
            expr=slos.breaker_open(profile.window("2m")),
            hold=profile.hold("1m"),
            severity="ticket",
            summary="the circuit breaker from {{ $labels.service }} to {{ $labels.upstream }} is open",
            description=(
                "A {{ $labels.service }} replica has had its breaker to {{ $labels.upstream }} open within the "
                f"last {profile.window('2m')}: calls to {{{{ $labels.upstream }}}} fail fast instead of waiting."
            ),
        ),
    ]


def messaging_alerts(profile: Profile) -> list[AlertRule]:
    growth_window = profile.window("10m")
    stall = profile.hold("5m")
    return [
        AlertRule(
            alert="OutboxBacklogGrowing",
            expr=slos.outbox_backlog_growing(growth_window),
            hold=profile.hold("5m"),
            severity="ticket",
            summary="the outbox of {{ $labels.service }} is growing ({{ $value }} events)",
            description=(
                f"{{{{ $value }}}} events wait in the outbox and the backlog has grown over the last "
                f"{growth_window}: the broker refuses or does not confirm publishes."
            ),
        ),
        AlertRule(
            alert="DeadLetterQueueNotEmpty",
            expr=slos.dead_letter_not_empty(),
            hold=profile.hold("1m"),
            severity="ticket",
            labels={"service": "notifications"},
            summary="{{ $value }} messages in {{ $labels.queue }}",
            description=(
                "Order events exhausted their delivery limit and were dead-lettered to {{ $labels.queue }}: "
                "those notifications were never delivered. Inspect, fix, then replay or purge."
            ),
        ),
        AlertRule(
            alert="ConsumerStalled",
            expr=slos.consumer_stalled(parse_duration(stall)),
            hold=profile.hold("2m"),
            severity="ticket",
            labels={"service": "notifications"},
            summary="{{ $labels.queue }} has {{ $value }} ready messages and no consumer progress",
            description=(
                f"{{{{ $value }}}} messages are ready in {{{{ $labels.queue }}}} and no notifications replica "
                f"has processed a message successfully for more than {stall}."
            ),
        ),
        AlertRule(
            alert="ConsumerLagHigh",
            expr=slos.consumer_lag_high(),
            hold=profile.hold("1m"),
            severity="ticket",
            labels={"service": "notifications"},
            summary="{{ $labels.queue }} has {{ $value }} ready messages: notifications is falling behind",
            description=(
                f"More than {slos.CONSUMER_LAG_THRESHOLD} order events wait in {{{{ $labels.queue }}}} for "
                f"{profile.hold('1m')}: notifications consumes slower than orders publish (a slow, starved or "
                "throttled consumer, a capped link). Customers get their notifications late."
            ),
        ),
    ]


def security_alerts(profile: Profile) -> list[AlertRule]:
    """Mutual TLS and authorization by caller identity (docs/design.md, "Security"; the security faults of
    chaos/README.md set each off)."""
    window = profile.window("5m")
    return [
        AlertRule(
            alert="TLSHandshakeFailures",
            expr=slos.handshake_failures(window),
            hold=profile.hold("1m"),
            severity="ticket",
            summary="{{ $labels.replica }} failed {{ $value }} TLS handshakes ({{ $labels.side }} side, "
                    "{{ $labels.reason }})",
            description=(
                f"Over {window}, {{{{ $value }}}} TLS handshakes failed at {{{{ $labels.replica }}}} as "
                "{{ $labels.side }} ({{ $labels.reason }}): a peer with no certificate, an expired one, one of "
                "another CA or one made for another service. Those connections carry nothing: the calls fail or "
                "go to another replica."
            ),
        ),
        AlertRule(
            alert="CertificateExpiringSoon",
            expr=slos.certificate_expiring(),
            hold=profile.hold("1m"),
            severity="ticket",
            summary="the certificate of {{ $labels.replica }} has {{ $value | humanizePercentage }} of its life left",
            description=(
                "The certificate {{ $labels.replica }} serves and calls with ({{ $labels.identity }}) has "
                f"{{{{ $value | humanizePercentage }}}} of its life left (below {slos.CERT_LIFE_LEFT_THRESHOLD:.0%}; "
                "negative: expired). Renewal is due at half of it: it has not happened, or the replica does not load "
                "the renewed files. Once expired its peers refuse every new connection with it."
            ),
        ),
        AlertRule(
            alert="CallerNotAllowed",
            expr=slos.callers_denied(window),
            hold=profile.hold("0s"),
            severity="ticket",
            summary="{{ $labels.callee }} refused {{ $value }} calls from {{ $labels.caller }}",
            description=(
                f"Over {window}, {{{{ $labels.callee }}}} refused {{{{ $value }}}} {{{{ $labels.protocol }}}} calls "
                "from {{ $labels.caller }}, which the shop's call graph does not let call it (403 caller-not-allowed "
                "or PERMISSION_DENIED): a replica holding another service's certificate, a compromised or "
                "misconfigured caller, or a call graph out of date."
            ),
        ),
    ]


def alert_rules(profile: Profile) -> list[AlertRule]:
    return (burn_rate_alerts(profile) + service_alerts(profile) + capacity_alerts(profile) + messaging_alerts(profile)
            + security_alerts(profile))


def alert_names() -> list[str]:
    """Every alert name once, in catalogue order (the same in every profile)."""
    from chaoslab.observability.profiles import STANDARD

    return list(dict.fromkeys(rule.alert for rule in alert_rules(STANDARD)))


# Labels Prometheus gives every series of a scrape target (chaoslab.lab's file_sd and the Kubernetes pod labels).
TARGET_LABELS = ("job", "instance", "service", "replica")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def _grouped(expr: str) -> set[str]:
    return {name.strip() for group in _BY.findall(expr) for name in group.split(",") if name.strip()}


def alert_labels() -> dict[str, dict[str, set[str] | None]]:
    """For every alert name, the labels its alerts can carry and, where the catalogue fixes them, their possible
    values (None: any value). Read from the rules: their static labels, severity, the `by (...)` groupings of the
    expression, and the target's labels when the expression keeps the series' own labels (no aggregation first).
    A plan's expectation is checked against this before anything runs (chaoslab.gameday.plan.check)."""
    from chaoslab.observability.profiles import STANDARD

    found: dict[str, dict[str, set[str] | None]] = {}
    for rule in alert_rules(STANDARD):
        labels = found.setdefault(rule.alert, {"alertname": {rule.alert}})
        severity = labels.setdefault("severity", set())
        if severity is not None:
            severity.add(rule.severity)
        static = dict(rule.labels)
        for key, value in static.items():
            values = labels.setdefault(key, set())
            if values is not None:
                values.add(value)
        dynamic = _grouped(rule.expr)
        recorded = {r.record: r for r in slo_recording_rules(STANDARD)}
        sources = [recorded[name] for name in _SELECTOR.findall(rule.expr) if name in recorded]
        for source in sources:  # a recorded series carries its rule's labels and groupings
            dynamic |= set(source.labels) | _grouped(source.expr)
        if not sources and not re.match(r"\s*\(?\s*(sum|max|min|avg|count)\b", rule.expr):
            dynamic.update(TARGET_LABELS)
        for key in dynamic - set(static):
            labels[key] = None
    return found
