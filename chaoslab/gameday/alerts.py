"""Alerts as the lab's webhook receiver saw them: what each expected alert did (reached the receiver, how long
after the injection, resolved and when), and every alert's firing/resolved interval for the timeline.

Everything is measured at the receiver (`received_at`), the end of the notification path (Prometheus rule
evaluation, `for:`, Alertmanager's group_wait): what an on-call person would have experienced.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaoslab.gameday.journal import FaultWindow
from chaoslab.gameday.plan import AlertSpec
from chaoslab.lab.webhook import AlertEvent


@dataclass(frozen=True)
class AlertInterval:
    name: str
    labels: dict[str, str]
    fired_at: float  # first firing notification received
    resolved_at: float | None  # first resolved notification received after it


@dataclass
class AlertOutcome:
    key: str
    name: str
    labels: dict[str, str]
    notified: bool = False
    received_at: float | None = None
    fired_at: float | None = None  # Prometheus' startsAt
    time_to_detect_s: float | None = None  # injection -> firing notification received
    resolved: bool = False
    resolved_received_at: float | None = None
    time_to_resolve_s: float | None = None  # fault undone -> resolved notification received


def outcome(spec: AlertSpec, seen: list[AlertEvent], window: FaultWindow | None) -> AlertOutcome:
    """What the expected alert did after the fault's injection (nothing measured without a fault window)."""
    result = AlertOutcome(spec.key, spec.name, dict(spec.labels))
    if window is None:
        return result
    mine = [e for e in seen if e.matches(spec.name, spec.labels) and e.received_at >= window.start]
    firing = next((e for e in mine if e.status == "firing"), None)
    if firing is None:
        return result
    result.notified = True
    result.received_at = firing.received_at
    result.fired_at = firing.starts_at
    result.time_to_detect_s = round(firing.received_at - window.start, 3)
    resolved = next((e for e in mine if e.status == "resolved" and e.received_at >= firing.received_at
                     and (not firing.fingerprint or e.fingerprint == firing.fingerprint)), None)
    if resolved is not None:
        result.resolved = True
        result.resolved_received_at = resolved.received_at
        result.time_to_resolve_s = round(max(0.0, resolved.received_at - window.end), 3)
    return result


def intervals(seen: list[AlertEvent]) -> list[AlertInterval]:
    """Firing-to-resolved intervals per alert instance (by fingerprint), in order of firing."""
    open_: dict[str, AlertEvent] = {}
    out: list[AlertInterval] = []
    for event in seen:
        key = event.fingerprint or repr(sorted(event.labels.items()))
        if event.status == "firing" and key not in open_:
            open_[key] = event
        elif event.status == "resolved" and key in open_:
            first = open_.pop(key)
            out.append(AlertInterval(first.name, first.labels, first.received_at, event.received_at))
    out.extend(AlertInterval(e.name, e.labels, e.received_at, None) for e in open_.values())
    return sorted(out, key=lambda i: i.fired_at)


def label_text(labels: dict[str, str], skip: tuple[str, ...] = ("alertname", "severity")) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)


def identity(name: str, labels: dict[str, str]) -> str:
    """A short name for an alert instance: its name and what it is about (service, upstream, queue)."""
    if labels.get("upstream"):
        about = f"{labels.get('service', '?')} → {labels['upstream']}"
    else:
        about = labels.get("queue") or labels.get("service") or labels.get("job") or ""
    return f"{name} ({about})" if about else name
