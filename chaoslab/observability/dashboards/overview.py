"""Overview: RED and SLO status of every service, error budgets, firing alerts."""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import (
    BUDGET,
    NO_ALERT,
    Dashboard,
    Panel,
    Row,
    Target,
    Threshold,
)

RI = "$__rate_interval"
RANGE = "$__range"


def red_row() -> Row:
    return Row("Requests, errors, duration (RED) per service", (
        Panel("Replicas up", (Target(slos.replicas_up(), "{{service}}", instant=True),), kind="stat",
              width=24, height=4, thresholds=(Threshold(None, "red"), Threshold(1, "green")),
              description="Replicas of each service answering their scrape now (0 = ServiceDown)."),
        Panel("Requests per second", (
            Target(slos.http_request_rate(RI), "{{service}}"),
            Target(slos.grpc_request_rate(RI), "{{service}} (gRPC)"),
        ), unit="reqps", width=8),
        Panel("Server error ratio", (
            Target(slos.http_error_ratio(RI), "{{service}}"),
            Target(slos.grpc_error_ratio(RI), "{{service}} (gRPC)"),
        ), unit="percentunit", width=8, min=0,
            description="HTTP 5xx, or gRPC server-fault codes, over all requests."),
        Panel("p99 latency", (
            Target(slos.http_latency_quantile(0.99, RI), "{{service}}", exemplars=True),
            Target(slos.grpc_latency_quantile(0.99, RI), "{{service}} (gRPC)", exemplars=True),
        ), unit="s", width=8,
            description="Exemplar dots link to the trace in Jaeger."),
    ))


def _per_slo(kind: str, make: str, window: str) -> tuple[Target, ...]:
    targets = []
    for item in slos.SLOS:
        if item.kind != kind:
            continue
        expr = {
            "sli": f"1 - ({item.error_ratio(window)})",
            "budget": item.budget_remaining(window),
            "burn": item.burn_rate(window),
        }[make]
        targets.append(Target(expr, item.service, instant=make != "burn"))
    return tuple(targets)


def slo_row() -> Row:
    return Row("SLOs over the dashboard's time range", (
        Panel("Availability SLI", _per_slo("availability", "sli", RANGE), kind="stat", unit="percentunit",
              width=12, height=5, thresholds=(Threshold(None, "red"), Threshold(0.999, "green")),
              description="Share of requests without a server error over the time range (objective 99.9%)."),
        Panel("Latency SLI", _per_slo("latency", "sli", RANGE), kind="stat", unit="percentunit",
              width=12, height=5, thresholds=(Threshold(None, "red"), Threshold(0.99, "green")),
              description="Share of requests under each service's threshold over the time range (objective 99%)."),
        Panel("Availability error budget remaining", _per_slo("availability", "budget", RANGE), kind="stat",
              unit="percentunit", width=12, height=5, thresholds=BUDGET,
              description="1 - errors spent / errors allowed over the time range; below 0 the SLO is missed."),
        Panel("Latency error budget remaining", _per_slo("latency", "budget", RANGE), kind="stat",
              unit="percentunit", width=12, height=5, thresholds=BUDGET),
        Panel("Availability burn rate", _per_slo("availability", "burn", RI), width=12, show_thresholds=True,
              thresholds=(Threshold(None, "green"), Threshold(1, "yellow"), Threshold(6, "orange"),
                          Threshold(14.4, "red")),
              description="1 = spending the budget exactly over the SLO period; 14.4 and 6 page, 3 and 1 "
                          "(sustained) open a ticket."),
        Panel("Latency burn rate", _per_slo("latency", "burn", RI), width=12, show_thresholds=True,
              thresholds=(Threshold(None, "green"), Threshold(1, "yellow"), Threshold(6, "orange"),
                          Threshold(14.4, "red"))),
    ))


def alerts_row() -> Row:
    return Row("Alerts", (
        Panel("Firing alerts", (Target('ALERTS{alertstate="firing"}', instant=True, table=True,
                                       empty_reason=NO_ALERT),),
              kind="table", width=14, height=8,
              description="From Prometheus' ALERTS series; runbooks: docs/runbooks/<alertname>.md."),
        Panel("Alerts firing over time", (Target('sum by (alertname) (ALERTS{alertstate="firing"})',
                                                 "{{alertname}}", empty_reason=NO_ALERT),),
              width=10, height=8, stack=True),
    ))


NO_REFUSAL = "no handshake fails and no caller is refused in a healthy lab"


def security_row() -> Row:
    """Mutual TLS inside the shop: the security alerts' series (TLSHandshakeFailures, CallerNotAllowed,
    CertificateExpiringSoon), shown where they come from."""
    return Row("Mutual TLS and callers", (
        Panel("Failed TLS handshakes", (Target(
            "sum by (service, side, reason) (rate(tls_handshake_failures_total[$__rate_interval]))",
            "{{service}} {{side}} {{reason}}", empty_reason=NO_REFUSAL),), unit="ops", width=8,
            description="Per service, side (server: a caller's certificate refused; client: an upstream's) and "
                        "reason (no_certificate, expired, unknown_ca, bad_certificate, wrong_name)."),
        Panel("Calls refused by caller identity", (Target(
            "sum by (caller, callee) (rate(authz_denied_total[$__rate_interval]))", "{{caller}} -> {{callee}}",
            empty_reason=NO_REFUSAL),), unit="reqps", width=8,
            description="403 caller-not-allowed / PERMISSION_DENIED: callers the call graph does not allow."),
        Panel("Certificate life left", (Target(
            "min by (replica) ((tls_certificate_expiry_timestamp_seconds - time()) / "
            "(tls_certificate_expiry_timestamp_seconds - tls_certificate_not_before_timestamp_seconds))",
            "{{replica}}", empty_reason="the lab runs --tls off"),), unit="percentunit", width=8, min=0,
            show_thresholds=True, thresholds=(Threshold(None, "red"), Threshold(slos.CERT_LIFE_LEFT_THRESHOLD,
                                                                                   "green")),
            description="Each replica's certificate: the share of its life left; renewed at 50%, "
                        "CertificateExpiringSoon below 25%."),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-overview",
        title="chaoslab / Overview",
        description="Every service's RED, SLO status and error budget, what alerts fire, and mutual TLS.",
        rows=(red_row(), slo_row(), alerts_row(), security_row()),
    )
