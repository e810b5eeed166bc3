"""Which fault caused which alert, when several faults act at once (a plan's overlapping faults, random chaos).

An alert that fired is given to one fault, by the first rule that decides (the reason is kept with it):
1. "names the target": among the faults acting when it fired (from their injection to their undoing plus
   GRACE_S, the time an alert takes to fire and resolve natively), one whose target the alert is about: its
   `service`, `upstream` or `job` label is the fault's service (or the broker's job for a broker fault);
2. "depends on the target": one whose target the alert's service depends on, through the shop's call graph
   (services.contract: orders calls payments, the gateway calls everyone) or the broker (orders publishes,
   notifications consumes): an open breaker in orders is payments' doing, not the broker's;
3. "acting when it fired": otherwise any of the faults acting;
4. none: it fired before any fault, or after every fault's grace: "not attributed".
Within rules 2 and 3 the fault that spent the most error budget wins (a burn-rate alert fires on the bad requests
some fault caused, often after a later, harmless fault began), then the one injected last; within rule 1, the
one injected last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chaoslab.gameday.alerts import AlertInterval, identity
from services import contract

GRACE_S = 60.0
BROKER = "broker"
BROKER_JOB = "rabbitmq"


@dataclass(frozen=True)
class Span:
    """A fault's window, as attribution sees it."""

    name: str
    target: str  # a service or "broker"
    start: float
    end: float
    spent: float = 0.0  # the error budget its window spent (chaoslab.gameday.budget)


@dataclass(frozen=True)
class Attribution:
    alert: str  # its name and what it is about: ServiceDown (payments)
    name: str
    labels: dict[str, str]
    fired_at: float
    resolved_at: float | None
    fault: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dependents(target: str) -> set[str]:
    """The services that depend on `target`, directly or through others (for the broker: its clients and theirs)."""
    if target == BROKER:
        direct = {s for s in contract.BROKER_PERMISSIONS if s in contract.SERVICE_NAMES}
    else:
        direct = set(contract.callers_of(target)) if target in contract.SERVICE_NAMES else set()
    found = set(direct)
    while direct:
        direct = {c for s in direct for c in contract.callers_of(s)} - found
        found |= direct
    return found


def names_target(labels: dict[str, str], target: str) -> bool:
    if target == BROKER:
        return labels.get("job") == BROKER_JOB or labels.get("service") == BROKER_JOB
    return target in (labels.get("service"), labels.get("upstream"), labels.get("job"))


def attribute_one(interval: AlertInterval, spans: Sequence[Span], grace_s: float = GRACE_S) -> tuple[str | None, str]:
    acting = sorted((s for s in spans if s.start <= interval.fired_at <= s.end + grace_s),
                    key=lambda s: s.start, reverse=True)
    if not acting:
        return None, "not attributed: no fault acted when it fired"
    for span in acting:
        if names_target(interval.labels, span.target):
            return span.name, f"names the target ({span.target})"
    costly = sorted(acting, key=lambda s: (s.spent, s.start), reverse=True)
    service = interval.labels.get("service", "")
    for span in costly:
        if service and service in dependents(span.target):
            return span.name, f"{service} depends on {span.target} (call graph)" + _cost(span, costly)
    return costly[0].name, "acting when it fired" + _cost(costly[0], costly)


def _cost(span: Span, acting: Sequence[Span]) -> str:
    return f", the most error budget spent ({span.spent:.1%})" if len(acting) > 1 and span.spent > 0 else ""


def attribute(intervals: Sequence[AlertInterval], spans: Sequence[Span],
              grace_s: float = GRACE_S) -> list[Attribution]:
    out = []
    for interval in intervals:
        fault, reason = attribute_one(interval, spans, grace_s)
        out.append(Attribution(identity(interval.name, interval.labels), interval.name, dict(interval.labels),
                               interval.fired_at, interval.resolved_at, fault, reason))
    return out
