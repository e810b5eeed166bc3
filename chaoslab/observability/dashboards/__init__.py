"""Grafana dashboards as code: one module per dashboard, rendered to dashboards/<name>.json."""

from __future__ import annotations

from chaoslab.observability.dashboards import chaos, loadtest, messaging, overview, payments, service
from chaoslab.observability.dashboards.spec import Dashboard


def dashboards() -> list[Dashboard]:
    return [overview.dashboard(), service.dashboard(), payments.dashboard(), messaging.dashboard(),
            loadtest.dashboard(), chaos.dashboard()]


__all__ = ["Dashboard", "dashboards"]
