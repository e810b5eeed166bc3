"""Service: one service's RED, dependencies and process, templated by $service and $replica."""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import NO_FAULT, Dashboard, Panel, Row, Target, Threshold, Variable

RI = "$__rate_interval"
SVC = 'service=~"$service"'
REP = 'replica=~"$replica"'

VARIABLES = (
    Variable("service", "Service", f"up{{{slos.SERVICE_JOBS_MATCHER}}}", "service"),
    Variable("replica", "Replica", f'up{{{slos.SERVICE_JOBS_MATCHER}, {SVC}}}', "replica"),
)


def _quantiles(http: bool) -> tuple[Target, ...]:
    fn = slos.http_latency_quantile if http else slos.grpc_latency_quantile
    suffix = "" if http else " (gRPC)"
    return tuple(Target(fn(q, RI, SVC, REP, by="service"), f"p{int(q * 100)} {{{{service}}}}{suffix}",
                        exemplars=True)
                 for q in (0.5, 0.9, 0.99))


def red_row() -> Row:
    return Row("RED", (
        Panel("Requests per second by replica", (
            Target(slos.http_request_rate(RI, SVC, REP, by="replica"), "{{replica}}"),
            Target(slos.grpc_request_rate(RI, SVC, REP, by="replica"), "{{replica}} (gRPC)"),
        ), unit="reqps", width=8, stack=True),
        Panel("Requests per second by route and status", (
            Target(f"sum by (service, route, status_class) (rate({slos.HTTP_DURATION}_count{{{SVC}, {REP}}}[{RI}]))",
                   "{{service}} {{route}} {{status_class}}"),
            Target(f"sum by (service, method, code) (rate({slos.GRPC_DURATION}_count{{{SVC}, {REP}}}[{RI}]))",
                   "{{service}} {{method}} {{code}}"),
        ), unit="reqps", width=8),
        Panel("Server error ratio by replica", (
            Target(slos.http_error_ratio(RI, SVC, REP, by="replica"), "{{replica}}"),
            Target(slos.grpc_error_ratio(RI, SVC, REP, by="replica"), "{{replica}} (gRPC)"),
        ), unit="percentunit", width=8, min=0),
        Panel("Latency quantiles", _quantiles(True) + _quantiles(False), unit="s", width=12,
              description="Exemplar dots link to the trace in Jaeger."),
        Panel("p99 latency by replica", (
            Target(slos.http_latency_quantile(0.99, RI, SVC, REP, by="replica"), "{{replica}}", exemplars=True),
            Target(slos.grpc_latency_quantile(0.99, RI, SVC, REP, by="replica"), "{{replica}} (gRPC)",
                   exemplars=True),
        ), unit="s", width=12),
    ))


def dependencies_row() -> Row:
    client = "client_request_duration_seconds"
    return Row("Upstreams, breakers, database", (
        Panel("Upstream call p99 by upstream", (
            Target(f"histogram_quantile(0.99, sum by (le, upstream) (rate({client}_bucket{{{SVC}, {REP}}}[{RI}])))",
                   "{{upstream}}", exemplars=True,
                   empty_reason="only services with upstreams (gateway, orders) make client calls"),
        ), unit="s", width=8),
        Panel("Upstream calls by outcome", (
            Target(f"sum by (upstream, outcome) (rate({client}_count{{{SVC}, {REP}}}[{RI}]))",
                   "{{upstream}} {{outcome}}",
                   empty_reason="only services with upstreams (gateway, orders) make client calls"),
        ), unit="reqps", width=8, stack=True),
        Panel("Circuit breaker state", (
            Target(f"max by (replica, upstream) (circuit_breaker_state{{{SVC}, {REP}}})",
                   "{{replica}} -> {{upstream}}", empty_reason="only services with upstreams have breakers"),
        ), width=8, min=0, max=2, show_thresholds=True,
            thresholds=(Threshold(None, "green"), Threshold(1, "orange"), Threshold(2, "red")),
            description="0 closed, 1 half-open, 2 open."),
        Panel("Database query p99 by operation", (
            Target(f"histogram_quantile(0.99, sum by (le, operation) "
                   f"(rate(db_query_duration_seconds_bucket{{{SVC}, {REP}}}[{RI}])))", "{{operation}}"),
        ), unit="s", width=12),
        Panel("Database queries per second", (
            Target(f"sum by (operation) (rate(db_query_duration_seconds_count{{{SVC}, {REP}}}[{RI}]))",
                   "{{operation}}"),
        ), unit="ops", width=12, stack=True),
    ))


def process_row() -> Row:
    return Row("Process", (
        Panel("Requests in flight", (
            Target(f"sum by (replica) (http_server_requests_in_flight{{{SVC}, {REP}}})", "{{replica}}"),
        ), width=6),
        Panel("CPU", (
            Target(f"sum by (replica) (rate(process_cpu_seconds_total{{{SVC}, {REP}}}[{RI}]))", "{{replica}}"),
        ), unit="percentunit", width=6),
        Panel("Resident memory", (
            Target(f"sum by (replica) (process_resident_memory_bytes{{{SVC}, {REP}}})", "{{replica}}"),
        ), unit="bytes", width=6),
        Panel("Injected faults", (
            Target(f"sum by (replica, kind) (fault_active{{{SVC}, {REP}}}) > 0", "{{replica}} {{kind}}",
                   empty_reason=NO_FAULT),
        ), width=6, min=0),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-service",
        title="chaoslab / Service",
        description="One service (or several) in detail: RED per replica and route, upstreams, breakers, "
                    "database and process.",
        rows=(red_row(), dependencies_row(), process_row()),
        variables=VARIABLES,
    )
