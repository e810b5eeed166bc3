"""What the traces prove about an experiment: that the resilience mechanisms engaged, read from the spans of the
requests made while the fault lasted, next to the same journey before it.

A plan states, per experiment (`traces:`), what must be seen between a caller and an upstream:
- `breaker`: the caller's breaker refused calls (the kit marks a refused call with a `circuit_open` event on the
  request's span: services/kit/resilience.py), and did not before the fault;
- `max_attempts`: no request made more attempts to the upstream than this (client spans from one request's span to
  the upstream, so a retry storm shows);
- `deadline`: no upstream span outlived its caller's attempt by more than DEADLINE_SLACK_S (the deadline reached the
  upstream and it stopped; a timed-out caller whose upstream works on is wasted capacity under a fault);
- `spans`: span names that must appear (a fallback path ran).
Each becomes a verdict. The report shows one journey's waterfall before and during the fault side by side.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.observability.traces import spans_in

DEADLINE_SLACK_S = 0.5  # the upstream's span ends when its handler has unwound, a little after the caller gave up


@dataclass
class Spans:
    """The spans of a time window, indexed for the questions below."""

    spans: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def between(cls, spans_dir: Path, start: float, end: float) -> Spans:
        lo, hi = start * 1e9, end * 1e9
        found = [s for s in spans_in(spans_dir) if lo <= (s.get("start_ns") or 0) <= hi]
        out = cls(found)
        for span in found:
            out.by_id[span["span_id"]] = span
            if span.get("parent_id"):
                out.children[span["parent_id"]].append(span)
        return out

    def upstream_of(self, client: dict[str, Any]) -> str | None:
        """The service a client span called: the service of its child server span."""
        kids = [c for c in self.children.get(client["span_id"], []) if c.get("kind") == "server"]
        return kids[0]["service"] if kids else None

    def refusals(self, service: str, upstream: str) -> int:
        return sum(1 for s in self.spans if s.get("service") == service for e in s.get("events") or []
                   if e.get("name") == "circuit_open" and (e.get("attributes") or {}).get("upstream") == upstream)

    def attempts(self, service: str, upstream: str, ports: set[int]) -> list[int]:
        """Per request span of `service`, how many client spans went to `upstream` (by the callee's server span,
        or by its port when the callee never answered)."""
        per_parent: dict[str, int] = defaultdict(int)
        for span in self.spans:
            if span.get("service") != service or span.get("kind") != "client" or not span.get("parent_id"):
                continue
            attributes = span.get("attributes") or {}
            port = attributes.get("server.port") or attributes.get("net.peer.port")
            if self.upstream_of(span) == upstream or (port is not None and int(port) in ports):
                per_parent[span["parent_id"]] += 1
        return list(per_parent.values())

    def outlived(self, service: str, upstream: str) -> list[float]:
        """For each call from `service` to `upstream`, by how much the upstream's span outlived the caller's."""
        out = []
        for span in self.spans:
            if span.get("service") != service or span.get("kind") != "client":
                continue
            for child in self.children.get(span["span_id"], []):
                if child.get("service") == upstream and child.get("end_ns") and span.get("end_ns"):
                    out.append((child["end_ns"] - span["end_ns"]) / 1e9)
        return out

    def names(self) -> set[str]:
        return {s.get("name", "") for s in self.spans}

    def journey(self, root: str) -> list[dict[str, Any]]:
        """The spans of the slowest request whose root span is named `root` (the journey to compare)."""
        roots = [s for s in self.spans if not s.get("parent_id") and s.get("name") == root and s.get("end_ns")]
        if not roots:
            return []
        slowest = max(roots, key=lambda s: s["end_ns"] - s["start_ns"])
        return sorted((s for s in self.spans if s["trace_id"] == slowest["trace_id"]), key=lambda s: s["start_ns"])
