"""Every metric the shop exposes, in one place (names and labels: docs/design.md, Prometheus conventions).

Target labels (job, service, replica) come from service discovery, so no metric carries them itself.
Service-specific metrics are created unregistered and registered only by the service that owns them
(`register_for`), so that e.g. the gateway does not expose a misleading outbox_backlog of 0.
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from services.contract import GATEWAY, NOTIFICATIONS, ORDERS, PAYMENTS

# Buckets cover the lab's range: a 50 ms provider, a 250 ms latency SLO threshold, multi-second faults.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- every service ---------------------------------------------------------------------------------------
http_server_request_duration_seconds = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests served, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=LATENCY_BUCKETS,
)
http_server_requests_in_flight = Gauge("http_server_requests_in_flight", "HTTP requests being served now.")
client_request_duration_seconds = Histogram(
    "client_request_duration_seconds",
    "Duration of calls to upstreams, per attempt, by upstream, protocol and outcome.",
    ["upstream", "protocol", "outcome"],
    buckets=LATENCY_BUCKETS,
)
circuit_breaker_state = Gauge(
    "circuit_breaker_state", "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.", ["upstream"]
)
db_query_duration_seconds = Histogram(
    "db_query_duration_seconds",
    "Duration of database statements, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
fault_active = Gauge("fault_active", "Injected faults active on this replica, by kind.", ["kind"])
# This replica's wall clock, read when it is scraped: minus the scrape's own timestamp (the scraper's clock), the
# replica's clock skew, as node_exporter's node_time_seconds shows a node's (the ClockSkew alert).
clock_time_seconds = Gauge("clock_time_seconds", "This replica's wall clock (Unix time) at the scrape.")
clock_time_seconds.set_function(time.time)
db_storage_full_total = Counter(
    "db_storage_full_total", "Writes refused because the database's storage is full (answered 503)."
)

# -- mutual TLS and caller authorization (services/kit/tls.py, handshakes.py, authz.py) --------------------------
tls_handshake_failures_total = Counter(
    "tls_handshake_failures_total",
    "TLS handshakes that failed, by side (server: a caller's handshake here; client: ours to an upstream), peer "
    "(the upstream's name on the client side; unknown on the server side, where the peer is not yet known) and "
    "reason (no_certificate, expired, unknown_ca, bad_certificate, wrong_name, other).",
    ["side", "peer", "reason"],
)
authz_denied_total = Counter(
    "authz_denied_total",
    "Calls refused because the caller may not call this service (403 caller-not-allowed or PERMISSION_DENIED), by "
    "the caller's identity (a service, or unknown), the callee and the protocol.",
    ["caller", "callee", "protocol"],
)
tls_certificate_expiry_timestamp_seconds = Gauge(
    "tls_certificate_expiry_timestamp_seconds",
    "When this replica's certificate expires (Unix time), by the identity it carries.",
    ["identity"],
)
tls_certificate_not_before_timestamp_seconds = Gauge(
    "tls_certificate_not_before_timestamp_seconds",
    "When this replica's certificate became valid (Unix time), by the identity it carries: with the expiry, its "
    "lifetime (CertificateExpiringSoon compares what is left with it).",
    ["identity"],
)
tls_certificate_loads_total = Counter(
    "tls_certificate_loads_total", "Certificates this replica loaded (the first, then one per renewal)."
)

# -- service-specific (registered by their owner) ---------------------------------------------------------
_OWN = {"registry": None}
gateway_ratelimit_rejections_total = Counter(
    "gateway_ratelimit_rejections_total", "Requests rejected by the gateway's rate limiter.", **_OWN
)
grpc_server_request_duration_seconds = Histogram(
    "grpc_server_request_duration_seconds",
    "Duration of gRPC calls served, by method and status code.",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
    **_OWN,
)
outbox_backlog = Gauge("outbox_backlog", "Outbox events not yet confirmed by the broker.", **_OWN)
outbox_publish_duration_seconds = Histogram(
    "outbox_publish_duration_seconds",
    "Time from publishing an outbox event to the broker's confirm.",
    buckets=LATENCY_BUCKETS,
    **_OWN,
)
outbox_published_total = Counter("outbox_published_total", "Outbox events confirmed by the broker.", **_OWN)
consumer_messages_total = Counter(
    "consumer_messages_total",
    "Messages handled by consumers, by queue and outcome "
    "(processed, failed, redelivered, duplicate, dead_lettered).",
    ["queue", "outcome"],
    **_OWN,
)
consumer_last_success_timestamp_seconds = Gauge(
    "consumer_last_success_timestamp_seconds",
    "Unix time of the last message processed successfully, by queue.",
    ["queue"],
    **_OWN,
)
payments_inflight = Gauge("payments_inflight", "Charges being processed by the provider now.", **_OWN)
payments_concurrency_limit = Gauge(
    "payments_concurrency_limit", "The provider's concurrency limit on this replica.", **_OWN
)
payments_processed_total = Counter(
    "payments_processed_total", "Charges handled, by outcome (charged, replayed, failed).", ["outcome"], **_OWN
)
orders_placed_total = Counter("orders_placed_total", "Orders accepted (201).", **_OWN)
orders_failed_total = Counter("orders_failed_total", "Orders that failed, by reason.", ["reason"], **_OWN)
notifications_delivered_total = Counter(
    "notifications_delivered_total", "Notifications stored for users.", **_OWN
)

SERVICE_METRICS: dict[str, list[Collector]] = {
    GATEWAY.name: [gateway_ratelimit_rejections_total],
    ORDERS.name: [outbox_backlog, outbox_publish_duration_seconds, outbox_published_total,
               orders_placed_total, orders_failed_total],
    PAYMENTS.name: [grpc_server_request_duration_seconds, payments_inflight, payments_concurrency_limit,
                 payments_processed_total],
    NOTIFICATIONS.name: [consumer_messages_total, consumer_last_success_timestamp_seconds,
                      notifications_delivered_total],
}

_registered: set[str] = set()


def register_for(service: str) -> None:
    """Register the metrics that `service` owns (idempotent)."""
    if service in _registered:
        return
    for collector in SERVICE_METRICS.get(service, []):
        REGISTRY.register(collector)
    _registered.add(service)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
