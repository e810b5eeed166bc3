"""Payments capacity: how close payments is to its concurrency limit, and how throughput scales with replicas."""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import Dashboard, Panel, Row, Target, Threshold

RI = "$__rate_interval"
PAY = 'service="payments"'
CHARGES = f"{slos.GRPC_DURATION}_count{{{PAY}}}"


def capacity_row() -> Row:
    return Row("Capacity", (
        Panel("In flight vs limit", (
            Target(f"sum(payments_inflight{{{PAY}}})", "in flight"),
            Target(f"sum(payments_concurrency_limit{{{PAY}}})", "limit (live replicas)"),
        ), width=12,
            description="Capacity is I/O-bound: every replica holds PROVIDER_CONCURRENCY slots, so the limit "
                        "grows with replicas."),
        Panel("Saturation", (Target(slos.payments_saturation(None, PAY), "saturation", instant=True),),
              kind="stat", unit="percentunit", width=4, min=0, max=1,
              thresholds=(Threshold(None, "green"), Threshold(0.7, "yellow"),
                          Threshold(slos.PAYMENTS_SATURATION_THRESHOLD, "red"))),
        Panel("Replicas up", (Target('sum(up{job="payments"})', "replicas", instant=True),),
              kind="stat", width=4, thresholds=(Threshold(None, "red"), Threshold(1, "green"))),
        Panel("Charges per second per live replica", (
            Target(f'sum(rate({CHARGES}[{RI}])) / sum(up{{job="payments"}})', "per replica", instant=True),
        ), kind="stat", unit="reqps", width=4),
        Panel("Saturation per replica", (
            Target(f"sum by (replica) (payments_inflight{{{PAY}}}) "
                   f"/ sum by (replica) (payments_concurrency_limit{{{PAY}}})", "{{replica}}"),
        ), unit="percentunit", width=12, min=0, max=1, show_thresholds=True,
            thresholds=(Threshold(None, "green"), Threshold(slos.PAYMENTS_SATURATION_THRESHOLD, "red"))),
        Panel("Replicas up over time", (Target('sum(up{job="payments"})', "replicas up"),), width=12, min=0),
    ))


def throughput_row() -> Row:
    return Row("Throughput and latency", (
        Panel("Charges per second per replica", (
            Target(f"sum by (replica) (rate({CHARGES}[{RI}]))", "{{replica}}"),
        ), unit="reqps", width=12, stack=True),
        Panel("Charges by gRPC code", (
            Target(f"sum by (code) (rate({CHARGES}[{RI}]))", "{{code}}"),
        ), unit="reqps", width=12, stack=True),
        Panel("Charge latency", tuple(
            Target(slos.grpc_latency_quantile(q, RI, PAY, by="service"), f"p{int(q * 100)}", exemplars=True)
            for q in (0.5, 0.9, 0.99)
        ), unit="s", width=12, description="Exemplar dots link to the trace in Jaeger."),
        Panel("Charges by outcome", (
            Target(f"sum by (outcome) (rate(payments_processed_total{{{PAY}}}[{RI}]))", "{{outcome}}"),
        ), unit="reqps", width=12, stack=True),
        Panel("Orders' calls to payments by outcome", (
            Target(f'sum by (outcome) (rate(client_request_duration_seconds_count{{service="orders", '
                   f'upstream="payments"}}[{RI}]))', "{{outcome}}"),
        ), unit="reqps", width=12, stack=True,
            description="The caller's view: timeouts and circuit_open here are what saturation costs."),
        Panel("Orders' payment call p99", (
            Target(f'histogram_quantile(0.99, sum by (le) (rate(client_request_duration_seconds_bucket'
                   f'{{service="orders", upstream="payments"}}[{RI}])))', "p99", exemplars=True),
        ), unit="s", width=12),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-payments",
        title="chaoslab / Payments capacity",
        description="Payments' in-flight charges against its concurrency limit, throughput per replica, "
                    "replicas up: does capacity grow with replicas?",
        rows=(capacity_row(), throughput_row()),
    )
