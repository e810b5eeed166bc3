"""Chaos: which faults are active where, what fired, and how the services took it.

Annotations mark faults (fault_active), firing alerts (ALERTS) and experiment steps that the chaos runner
posts to Grafana's annotation API with the tag `chaos`.
"""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import (
    NO_ALERT,
    NO_FAULT,
    Annotation,
    Dashboard,
    Panel,
    Row,
    Target,
    Threshold,
)

RI = "$__rate_interval"

ANNOTATIONS = (
    Annotation("Chaos experiments", "purple", tags=("chaos",)),
    Annotation("Faults", "orange", expr="sum by (service, kind) (fault_active) > 0",
               title="{{kind}} fault on {{service}}", empty_reason=NO_FAULT),
    Annotation("Firing alerts", "red", expr='ALERTS{alertstate="firing"}',
               title="{{alertname}}", text="{{service}} {{severity}}", empty_reason=NO_ALERT),
)


def faults_row() -> Row:
    return Row("Faults and alerts", (
        Panel("Faults active now", (
            # The kit exports fault_active from a replica's first fault on: absent before any experiment.
            Target("sum by (service) (fault_active)", "{{service}}", instant=True, empty_reason=NO_FAULT),
        ), kind="stat", width=8, height=5, thresholds=(Threshold(None, "green"), Threshold(1, "orange"))),
        Panel("Faults active by service and kind", (
            Target("sum by (service, kind) (fault_active) > 0", "{{service}} {{kind}}", empty_reason=NO_FAULT),
        ), width=16, height=5, stack=True),
        Panel("Firing alerts", (Target('ALERTS{alertstate="firing"}', instant=True, table=True,
                                       empty_reason=NO_ALERT),),
              kind="table", width=12, height=8),
        Panel("Alert states over time", (
            Target("sum by (alertname, alertstate) (ALERTS)", "{{alertname}} {{alertstate}}",
                   empty_reason=NO_ALERT),
        ), width=12, height=8),
    ))


def impact_row() -> Row:
    return Row("Impact", (
        Panel("Replicas up", (Target(slos.replicas_up(), "{{service}}"),), width=8, min=0),
        Panel("Server error ratio", (
            Target(slos.http_error_ratio(RI), "{{service}}"),
            Target(slos.grpc_error_ratio(RI), "{{service}} (gRPC)"),
        ), unit="percentunit", width=8, min=0),
        Panel("p99 latency", (
            Target(slos.http_latency_quantile(0.99, RI), "{{service}}", exemplars=True),
            Target(slos.grpc_latency_quantile(0.99, RI), "{{service}} (gRPC)", exemplars=True),
        ), unit="s", width=8),
        Panel("Outbox backlog and dead letters", (
            Target("sum(outbox_backlog)", "outbox backlog"),
            Target(slos.queue_messages(slos.DEAD_LETTER_QUEUE), "{{queue}}"),
        ), width=12),
        Panel("Orders placed and failed", (
            Target(f"sum(rate(orders_placed_total[{RI}]))", "placed/s"),
            Target(f"sum by (reason) (rate(orders_failed_total[{RI}]))", "failed/s {{reason}}",
                   empty_reason="orders only fail under a fault"),
        ), unit="ops", width=12),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-chaos",
        title="chaoslab / Chaos",
        description="Faults injected by experiments, the alerts they fired, and their impact on the shop.",
        rows=(faults_row(), impact_row()),
        annotations=ANNOTATIONS,
        refresh="5s",
        time_from="now-15m",
    )
