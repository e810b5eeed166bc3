"""Grafana dashboards as code: one module per dashboard, rendered to dashboards/<name>.json by the two that
are not dashboards (spec.py, render.py).

- chaos.py      Chaos: active faults, what fired, how the services took it
- loadtest.py   Load test: what Locust's users see beside what the gateway served
- messaging.py  Messaging: the outbox, queues, consumers, dead letters, redeliveries
- overview.py   Overview: RED and SLO status of every service, error budgets, firing alerts
- payments.py   Payments capacity: the concurrency limit, throughput against replicas
- render.py     a spec.Dashboard to Grafana JSON with grafana-foundation-sdk's builders
- service.py    Service: one service's RED, dependencies and process ($service, $replica)
- spec.py       a small typed description of a dashboard
"""

from __future__ import annotations

from chaoslab.observability.dashboards import chaos, loadtest, messaging, overview, payments, service
from chaoslab.observability.dashboards.spec import Dashboard


def dashboards() -> list[Dashboard]:
    return [overview.dashboard(), service.dashboard(), payments.dashboard(), messaging.dashboard(),
            loadtest.dashboard(), chaos.dashboard()]


__all__ = ["Dashboard", "dashboards"]
