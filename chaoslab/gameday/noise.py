"""How much an experiment's fault made Alertmanager say, and whether inhibition held: the on-call person's view.

Counted from the notifications the lab's webhook receiver got while the experiment ran (Alertmanager's own
payloads): notifications that carry a firing alert, the distinct groups they came in (`groupKey`), and pages
(the `page` receiver). A plan states a page budget per fault (`page_budget`) and which pages besides the expected
alerts it tolerates (`allowed_pages`); any other page fails the experiment. `inhibited` names alerts that must be
suppressed while another one fires (alerts/alertmanager.yml's inhibit_rules): checked for real, as alerts that were
firing in Prometheus while their source fired, of which no notification arrived meanwhile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chaoslab.clients.prometheus import Prometheus
from chaoslab.gameday.alerts import identity
from chaoslab.observability.alerts import alert_labels

PAGE = "page"


@dataclass
class Noise:
    notifications: int = 0  # notifications carrying at least one firing alert
    groups: int = 0  # distinct groups among them
    pages: int = 0  # of them, to the page receiver
    paged: list[str] = field(default_factory=list)  # every page alert instance notified, as "Name (about)"
    paged_labels: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count(notes: list[dict[str, Any]]) -> Noise:
    """The noise in the receiver's notifications (chaoslab.lab.webhook.notifications)."""
    noise = Noise()
    groups, paged = set(), {}
    for note in notes:
        firing = [a for a in note.get("alerts", []) if a.get("status") == "firing"]
        if not firing:
            continue
        noise.notifications += 1
        groups.add(str(note.get("groupKey") or note.get("groupLabels")))
        if note.get("receiver") == PAGE:
            noise.pages += 1
            for alert in firing:
                labels = dict(alert.get("labels", {}))
                paged.setdefault(identity(labels.get("alertname", "?"), labels), labels)
    noise.groups = len(groups)
    noise.paged = sorted(paged)
    noise.paged_labels = [paged[k] for k in noise.paged]
    return noise


def unexpected_pages(noise: Noise, expected: list[tuple[str, dict[str, str]]], allowed: list[str]) -> list[str]:
    """Page alert instances that are neither an expected alert nor allowed by name."""
    out = []
    for shown, labels in zip(noise.paged, noise.paged_labels, strict=True):
        name = labels.get("alertname", "?")
        if name in allowed or shown in allowed:
            continue
        if any(name == n and all(labels.get(k) == v for k, v in want.items()) for n, want in expected):
            continue
        out.append(shown)
    return out


@dataclass
class Inhibition:
    target: str
    source: str
    overlapped_s: float  # how long the target was firing in Prometheus while the source was
    notified: list[float]  # firing notifications of the target received while the source was firing

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _firing_times(prometheus: Prometheus, name: str, start: float, end: float) -> list[float]:
    expr = f'ALERTS{{alertname="{name}", alertstate="firing"}}'
    return sorted({t for s in prometheus.query_range(expr, start, end, 1.0) for t, _ in s.points})


def inhibition(prometheus: Prometheus, notes: list[dict[str, Any]], target: str, source: str, start: float,
               end: float) -> Inhibition:
    """Whether `target` was suppressed while `source` fired, read from Prometheus (1 s steps) and the receiver."""
    source_times = set(_firing_times(prometheus, source, start, end))
    target_times = _firing_times(prometheus, target, start, end)
    overlap = [t for t in target_times if t in source_times]
    lo, hi = (min(source_times), max(source_times) + 1.0) if source_times else (0.0, -1.0)
    notified = [float(n.get("received_at", 0.0)) for n in notes
                if lo <= float(n.get("received_at", 0.0)) <= hi
                and any(a.get("status") == "firing" and a.get("labels", {}).get("alertname") == target
                        for a in n.get("alerts", []))]
    return Inhibition(target, source, float(len(overlap)), notified)


def known(name: str) -> bool:
    return name in alert_labels()
