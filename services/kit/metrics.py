"""Every metric the shop exposes, in one place (names and labels: docs/design.md, Prometheus conventions).

Target labels (job, service, replica) come from service discovery, so no metric carries them itself.
Service-specific metrics are created unregistered and registered only by the service that owns them
(`register_for`), so that e.g. the gateway does not expose a misleading outbox_backlog of 0.

Several modules in one process (the modular monolith, services/monolith; METRICS_BY_MODULE=1 before this module is
imported): every metric then carries the module that recorded it as a leading `service` label, taken from the
context variable MODULE (each module's tasks set it; an in-process call sets it to the callee while the callee
runs), and each module's admin port serves only its own samples without that label (`module_view`). Prometheus then
sees from each module's target what it sees from a service's: the same names, labels and queries.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from services.contract import GATEWAY, NOTIFICATIONS, ORDERS, PAYMENTS

BY_MODULE = os.environ.get("METRICS_BY_MODULE") == "1"
MODULE: ContextVar[str] = ContextVar("module", default="")
MODULE_LABEL = "service"


class _ByModule:
    """A metric whose leading label is the current module: `.labels(...)`, `.inc()`, `.observe()`, `.set()` as
    the metric's own, with MODULE put first."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def labels(self, *values: str, **named: str) -> Any:
        if named:
            return self.metric.labels(**{MODULE_LABEL: MODULE.get(), **named})
        return self.metric.labels(MODULE.get(), *values)

    def __getattr__(self, name: str) -> Any:  # inc, dec, set, observe, set_function on this module's child
        return getattr(self.metric.labels(MODULE.get()), name)


def _made(cls: Any, name: str, documentation: str, labelnames: list[str] | tuple[str, ...] = (), **kw: Any) -> Any:
    if not BY_MODULE:
        return cls(name, documentation, labelnames, **kw)
    return _ByModule(cls(name, documentation, [MODULE_LABEL, *labelnames], **kw))


def _collector(metric: Any) -> Collector:
    return metric.metric if isinstance(metric, _ByModule) else metric


class _ModuleView(Collector):
    """The process' samples of one module, without the module label; samples no module recorded (the process'
    own: CPU, memory, GC) only in the view that `owns_process` (the gateway module's)."""

    def __init__(self, module: str, owns_process: bool) -> None:
        self.module, self.owns_process = module, owns_process

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labels = sample.labels
                if MODULE_LABEL in labels:
                    if labels[MODULE_LABEL] != self.module:
                        continue
                    labels = {k: v for k, v in labels.items() if k != MODULE_LABEL}
                elif not self.owns_process:
                    continue
                out.samples.append(Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar))
            if out.samples:
                yield out


def module_view(module: str, *, owns_process: bool) -> Collector:
    """What one module's admin port serves under METRICS_BY_MODULE (the whole registry otherwise)."""
    return _ModuleView(module, owns_process) if BY_MODULE else REGISTRY


# Buckets cover the lab's range: a 50 ms provider, a 250 ms latency SLO threshold, multi-second faults.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- every service ---------------------------------------------------------------------------------------
http_server_request_duration_seconds = _made(
    Histogram,
    "http_server_request_duration_seconds",
    "Duration of HTTP requests served, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=LATENCY_BUCKETS,
)
http_server_requests_in_flight = _made(Gauge, "http_server_requests_in_flight", "HTTP requests being served now.")
client_request_duration_seconds = _made(
    Histogram,
    "client_request_duration_seconds",
    "Duration of calls to upstreams, per attempt, by upstream, protocol and outcome.",
    ["upstream", "protocol", "outcome"],
    buckets=LATENCY_BUCKETS,
)
circuit_breaker_state = _made(
    Gauge,
    "circuit_breaker_state", "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.", ["upstream"]
)
db_query_duration_seconds = _made(
    Histogram,
    "db_query_duration_seconds",
    "Duration of database statements, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
fault_active = _made(Gauge, "fault_active", "Injected faults active on this replica, by kind.", ["kind"])
# This replica's wall clock, read when it is scraped: minus the scrape's own timestamp (the scraper's clock), the
# replica's clock skew, as node_exporter's node_time_seconds shows a node's (the ClockSkew alert).
clock_time_seconds = _made(Gauge, "clock_time_seconds", "This replica's wall clock (Unix time) at the scrape.")
if not BY_MODULE:
    clock_time_seconds.set_function(time.time)  # by module: set per module, in register_for
db_storage_full_total = _made(
    Counter,
    "db_storage_full_total", "Writes refused because the database's storage is full (answered 503)."
)

# -- mutual TLS and caller authorization (services/kit/tls.py, handshakes.py, authz.py) --------------------------
tls_handshake_failures_total = _made(
    Counter,
    "tls_handshake_failures_total",
    "TLS handshakes that failed, by side (server: a caller's handshake here; client: ours to an upstream), peer "
    "(the upstream's name on the client side; unknown on the server side, where the peer is not yet known) and "
    "reason (no_certificate, expired, unknown_ca, bad_certificate, wrong_name, other).",
    ["side", "peer", "reason"],
)
authz_denied_total = _made(
    Counter,
    "authz_denied_total",
    "Calls refused because the caller may not call this service (403 caller-not-allowed or PERMISSION_DENIED), by "
    "the caller's identity (a service, or unknown), the callee and the protocol.",
    ["caller", "callee", "protocol"],
)
tls_certificate_expiry_timestamp_seconds = _made(
    Gauge,
    "tls_certificate_expiry_timestamp_seconds",
    "When this replica's certificate expires (Unix time), by the identity it carries.",
    ["identity"],
)
tls_certificate_not_before_timestamp_seconds = _made(
    Gauge,
    "tls_certificate_not_before_timestamp_seconds",
    "When this replica's certificate became valid (Unix time), by the identity it carries: with the expiry, its "
    "lifetime (CertificateExpiringSoon compares what is left with it).",
    ["identity"],
)
tls_certificate_loads_total = _made(
    Counter,
    "tls_certificate_loads_total", "Certificates this replica loaded (the first, then one per renewal)."
)

# -- service-specific (registered by their owner) ---------------------------------------------------------
_OWN = {"registry": None}
gateway_ratelimit_rejections_total = _made(
    Counter,
    "gateway_ratelimit_rejections_total", "Requests rejected by the gateway's rate limiter.", **_OWN
)
grpc_server_request_duration_seconds = _made(
    Histogram,
    "grpc_server_request_duration_seconds",
    "Duration of gRPC calls served, by method and status code.",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
    **_OWN,
)
outbox_backlog = _made(Gauge, "outbox_backlog", "Outbox events not yet confirmed by the broker.", **_OWN)
outbox_publish_duration_seconds = _made(
    Histogram,
    "outbox_publish_duration_seconds",
    "Time from publishing an outbox event to the broker's confirm.",
    buckets=LATENCY_BUCKETS,
    **_OWN,
)
outbox_published_total = _made(Counter, "outbox_published_total", "Outbox events confirmed by the broker.", **_OWN)
consumer_messages_total = _made(
    Counter,
    "consumer_messages_total",
    "Messages handled by consumers, by queue and outcome "
    "(processed, failed, redelivered, duplicate, dead_lettered).",
    ["queue", "outcome"],
    **_OWN,
)
consumer_last_success_timestamp_seconds = _made(
    Gauge,
    "consumer_last_success_timestamp_seconds",
    "Unix time of the last message processed successfully, by queue.",
    ["queue"],
    **_OWN,
)
payments_inflight = _made(Gauge, "payments_inflight", "Charges being processed by the provider now.", **_OWN)
payments_concurrency_limit = _made(
    Gauge,
    "payments_concurrency_limit", "The provider's concurrency limit on this replica.", **_OWN
)
payments_processed_total = _made(
    Counter,
    "payments_processed_total", "Charges handled, by outcome (charged, replayed, failed).", ["outcome"], **_OWN
)
orders_placed_total = _made(Counter, "orders_placed_total", "Orders accepted (201).", **_OWN)
orders_failed_total = _made(Counter, "orders_failed_total", "Orders that failed, by reason.", ["reason"], **_OWN)
notifications_delivered_total = _made(
    Counter,
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

# Every module's metrics without labels of their own (by module: each module gets its sample at registration).
_UNLABELLED = [http_server_requests_in_flight, db_storage_full_total, tls_certificate_loads_total]

_registered: set[str] = set()


def register_for(service: str) -> None:
    """Register the metrics that `service` owns (idempotent). By module: also give the module its own sample of
    every metric without other labels (0, as a service's process shows them from its start) and its clock."""
    if service in _registered:
        return
    for collector in SERVICE_METRICS.get(service, []):
        REGISTRY.register(_collector(collector))
    _registered.add(service)
    if BY_MODULE:
        for metric in (*_UNLABELLED, *SERVICE_METRICS.get(service, [])):
            inner = _collector(metric)
            if list(inner._labelnames) == [MODULE_LABEL]:
                inner.labels(service)
        _collector(clock_time_seconds).labels(service).set_function(time.time)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
