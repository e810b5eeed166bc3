"""Load test: what Locust's users see (client side), beside what the gateway served (server side).

Metric names are the Locust exporter's (loadtests/): locust_requests_per_second, locust_failures_per_second,
locust_response_time_seconds{name, quantile}, locust_users, locust_requests_total{name, method},
locust_failures_total{name, method}.
"""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import NO_LOADTEST, Dashboard, Panel, Row, Target, Threshold

RI = "$__rate_interval"


def client_row() -> Row:
    return Row("Client side (Locust)", (
        Panel("Users", (Target("sum(locust_users)", "users", instant=True, empty_reason=NO_LOADTEST),),
              kind="stat", width=4),
        Panel("Failure ratio", (
            Target(f"sum(rate(locust_failures_total[{RI}])) / sum(rate(locust_requests_total[{RI}]))",
                   "failures", instant=True, empty_reason=NO_LOADTEST),
        ), kind="stat", unit="percentunit", width=4,
            thresholds=(Threshold(None, "green"), Threshold(0.001, "yellow"), Threshold(0.01, "red"))),
        Panel("Requests and failures per second", (
            Target("sum(locust_requests_per_second)", "requests/s", empty_reason=NO_LOADTEST),
            Target("sum(locust_failures_per_second)", "failures/s", empty_reason=NO_LOADTEST),
        ), unit="reqps", width=16),
        Panel("Response time by endpoint", (
            Target('max by (name, quantile) (locust_response_time_seconds{quantile=~"0.5|0.95|0.99"})',
                   "{{name}} q{{quantile}}", empty_reason=NO_LOADTEST),
        ), unit="s", width=12),
        Panel("Users over time", (Target("sum(locust_users)", "users", empty_reason=NO_LOADTEST),), width=12),
        Panel("Requests per second by endpoint", (
            Target(f"sum by (name, method) (rate(locust_requests_total[{RI}]))", "{{method}} {{name}}",
                   empty_reason=NO_LOADTEST),
        ), unit="reqps", width=12, stack=True),
        Panel("Failures per second by endpoint", (
            Target(f"sum by (name, method) (rate(locust_failures_total[{RI}]))", "{{method}} {{name}}",
                   empty_reason="failures only appear when a request fails during a load test"),
        ), unit="reqps", width=12, stack=True),
    ))


def server_row() -> Row:
    return Row("Server side (gateway)", (
        Panel("Client vs server request rate", (
            Target(f"sum(rate(locust_requests_total[{RI}]))", "Locust sent", empty_reason=NO_LOADTEST),
            Target(slos.http_request_rate(RI, 'service="gateway"'), "gateway served"),
        ), unit="reqps", width=12,
            description="A gap means requests that never reached the gateway (connection errors) or traffic "
                        "from elsewhere."),
        Panel("Gateway rate-limit rejections", (
            Target(f"sum(rate(gateway_ratelimit_rejections_total[{RI}]))", "429/s"),
        ), unit="reqps", width=12),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-loadtest",
        title="chaoslab / Load test",
        description="Locust's client-side view of a load test next to the gateway's server-side view.",
        rows=(client_row(), server_row()),
        refresh="5s",
        time_from="now-15m",
    )
