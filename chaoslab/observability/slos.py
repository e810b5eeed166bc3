"""The SLO catalogue and every shared PromQL query: the one source of truth for rules, alerts and dashboards.

Metric names and labels follow docs/design.md ("Metrics"). Target labels `job` (= the service's name),
`service` and `replica` come from service discovery, so every service-level query selects on them.
Queries take their range window as an argument: rules pass concrete (profile-scaled) windows, dashboards
pass Grafana's `$__rate_interval` / `$__range`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chaoslab.observability.profiles import parse_duration
from services import contract

SERVICES: tuple[str, ...] = contract.SERVICE_NAMES
# payments serves gRPC only (its HTTP port is admin-only), so its SLIs come from the gRPC histogram.
HTTP_SERVICES: tuple[str, ...] = contract.HTTP_SERVICES
GRPC_SERVICES: tuple[str, ...] = contract.GRPC_SERVICES
SERVICE_JOBS = "|".join(SERVICES)
SERVICE_JOBS_MATCHER = f'job=~"{SERVICE_JOBS}"'
BROKER_JOB = "rabbitmq"

ORDER_EVENTS_QUEUE = contract.ORDER_EVENTS_QUEUE
DEAD_LETTER_QUEUE = contract.DEAD_LETTER_QUEUE

# Codes that mean the server failed (not the caller): these spend the availability budget. The `code` label
# holds the status code's name (docs/design.md, Metrics).
# RESOURCE_EXHAUSTED is payments refusing work beyond its concurrency limit: a capacity failure, so it counts.
GRPC_SERVER_ERROR_CODES = "UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNIMPLEMENTED"

HTTP_DURATION = "http_server_request_duration_seconds"
GRPC_DURATION = "grpc_server_request_duration_seconds"

# Thresholds above which a histogram quantile is worth a look on dashboards (not alerting thresholds).
PAYMENTS_SATURATION_THRESHOLD = 0.9


@dataclass(frozen=True)
class Selector:
    """A metric name with label matchers; `with_()` adds matchers (e.g. Grafana's `service=~"$service"`)."""

    metric: str
    matchers: tuple[str, ...] = ()

    def with_(self, *extra: str) -> Selector:
        return Selector(self.metric, self.matchers + tuple(m for m in extra if m))

    def __str__(self) -> str:
        return f"{self.metric}{{{', '.join(self.matchers)}}}" if self.matchers else self.metric


def rate(sel: Selector, window: str) -> str:
    return f"rate({sel}[{window}])"


def _fmt(number: float) -> str:
    """A float as PromQL and YAML write it: 0.0144, not 0.014400000000000001."""
    return f"{number:.6g}"


@dataclass(frozen=True)
class SLO:
    """One service level objective: a ratio of bad events to all events, over any window.

    availability: bad = server errors (HTTP 5xx, or gRPC server-fault codes) / all requests.
    latency:      bad = requests slower than `threshold_s` / all requests, read from the histogram's
                  `le` bucket, so `threshold_s` must be a bucket boundary (services/kit/metrics.py).
    """

    service: str
    kind: Literal["availability", "latency"]
    objective: float
    total: Selector
    bad: Selector | None = None  # availability: a counter of bad events
    good: Selector | None = None  # latency: the `le` bucket counting good events
    threshold_s: float | None = None
    description: str = ""

    @property
    def name(self) -> str:
        return f"{self.service}-{self.kind}"

    @property
    def error_budget(self) -> float:
        return 1 - self.objective

    def error_ratio(self, window: str, *extra: str) -> str:
        """Share of bad events over `window` (empty when there was no traffic at all)."""
        total = f"sum({rate(self.total.with_(*extra), window)})"
        if self.kind == "availability":
            assert self.bad is not None
            # No 5xx yet means no 5xx series at all: count that as zero errors, not as no data.
            return f"(sum({rate(self.bad.with_(*extra), window)}) or vector(0)) / {total}"
        assert self.good is not None
        return f"1 - (sum({rate(self.good.with_(*extra), window)}) / {total})"

    def budget_remaining(self, window: str, *extra: str) -> str:
        """Share of the error budget left after `window` (1 = untouched, 0 = spent, < 0 = overspent)."""
        return f"1 - (({self.error_ratio(window, *extra)}) / {_fmt(self.error_budget)})"

    def burn_rate(self, window: str, *extra: str) -> str:
        """How fast the budget burns: 1 spends exactly the budget over the SLO period."""
        return f"({self.error_ratio(window, *extra)}) / {_fmt(self.error_budget)}"


def _http_slos(service: str, latency_threshold_s: float) -> list[SLO]:
    count = Selector(f"{HTTP_DURATION}_count", (f'service="{service}"',))
    bucket = Selector(f"{HTTP_DURATION}_bucket", (f'service="{service}"', f'le="{latency_threshold_s}"'))
    return [
        SLO(service, "availability", 0.999, total=count, bad=count.with_('status_class="5xx"'),
            description=f"99.9% of {service}'s HTTP requests answer without a 5xx"),
        SLO(service, "latency", 0.99, total=count, good=bucket, threshold_s=latency_threshold_s,
            description=f"99% of {service}'s HTTP requests answer within {latency_threshold_s:g}s"),
    ]


def _grpc_slos(service: str, latency_threshold_s: float) -> list[SLO]:
    count = Selector(f"{GRPC_DURATION}_count", (f'service="{service}"',))
    bucket = Selector(f"{GRPC_DURATION}_bucket", (f'service="{service}"', f'le="{latency_threshold_s}"'))
    return [
        SLO(service, "availability", 0.999, total=count, bad=count.with_(f'code=~"{GRPC_SERVER_ERROR_CODES}"'),
            description=f"99.9% of {service}'s gRPC calls end without a server-side error code"),
        SLO(service, "latency", 0.99, total=count, good=bucket, threshold_s=latency_threshold_s,
            description=f"99% of {service}'s gRPC calls answer within {latency_threshold_s:g}s"),
    ]


# Thresholds: the gateway and orders wait on a chain (orders -> users + payments), auth hashes passwords
# (argon2), the rest answer from one local query; payments' simulated provider takes ~50 ms.
# Every threshold must be a bucket of services/kit/metrics.py LATENCY_BUCKETS, written as prometheus-client
# writes `le` (0.25 -> "0.25", 0.5 -> "0.5").
SLOS: tuple[SLO, ...] = tuple(
    _http_slos("gateway", 0.5)
    + _http_slos("auth", 0.5)
    + _http_slos("users", 0.25)
    + _http_slos("orders", 0.5)
    + _grpc_slos("payments", 0.25)
    + _http_slos("notifications", 0.25)
)


def slo(service: str, kind: str) -> SLO:
    for item in SLOS:
        if item.service == service and item.kind == kind:
            return item
    raise KeyError(f"no {kind} SLO for {service}")


@dataclass(frozen=True)
class BurnWindow:
    """One multi-window burn-rate condition (SRE workbook, ch. 5): both windows must burn faster than `factor`."""

    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class BurnAlert:
    """A burn-rate alert: any of its window pairs firing fires it."""

    suffix: str  # AvailabilityBurnRate<suffix>
    severity: Literal["page", "ticket"]
    windows: tuple[BurnWindow, ...]
    hold: str  # `for:` in standard terms


# The workbook's recommended multiwindow, multi-burn-rate set for a 30-day SLO period.
BURN_ALERTS: tuple[BurnAlert, ...] = (
    # 14.4x for 1h (or 6x for 6h) spends 2% (5%) of a 30-day budget: page.
    BurnAlert("Fast", "page", (BurnWindow("1h", "5m", 14.4), BurnWindow("6h", "30m", 6)), "2m"),
    # 3x for 1d (or 1x for 3d) spends 10% of it: a ticket for working hours.
    BurnAlert("Slow", "ticket", (BurnWindow("1d", "2h", 3), BurnWindow("3d", "6h", 1)), "15m"),
)


def _windows(alerts: tuple[BurnAlert, ...]) -> tuple[str, ...]:
    return tuple(sorted({w for a in alerts for p in a.windows for w in (p.long, p.short)}, key=parse_duration))


BURN_WINDOWS: tuple[str, ...] = _windows(BURN_ALERTS)
# The rule groups split by pace (chaoslab/observability/rules.py): pages in the fast group with every window they
# read; tickets in a slower one with the windows only they read (the 1-day and 3-day ones are the costly ones).
FAST_BURN_ALERTS = tuple(a for a in BURN_ALERTS if a.severity == "page")
SLOW_BURN_ALERTS = tuple(a for a in BURN_ALERTS if a.severity != "page")
FAST_BURN_WINDOWS = _windows(FAST_BURN_ALERTS)
SLOW_ONLY_BURN_WINDOWS = tuple(w for w in _windows(SLOW_BURN_ALERTS) if w not in FAST_BURN_WINDOWS)


def recorded_error_ratio(window: str) -> str:
    """Name of the recording rule holding every SLO's error ratio over `window` (label `slo` tells which)."""
    return f"slo:sli_error:ratio_rate{window}"


def burn_condition(item: SLO, alert: BurnAlert, window_of: Callable[[str], str]) -> str:
    """The alert expression over recorded ratios: (long > f*budget and short > f*budget) or ..."""
    parts = []
    for pair in alert.windows:
        threshold = _fmt(pair.factor * item.error_budget)
        long_ = f'{recorded_error_ratio(window_of(pair.long))}{{slo="{item.name}"}} > {threshold}'
        short = f'{recorded_error_ratio(window_of(pair.short))}{{slo="{item.name}"}} > {threshold}'
        parts.append(f"({long_} and {short})")
    return " or ".join(parts)


# -- RED per service ---------------------------------------------------------------------------------------
def http_request_rate(window: str, *extra: str, by: str = "service") -> str:
    return f"sum by ({by}) ({rate(Selector(f'{HTTP_DURATION}_count', extra), window)})"


def http_error_ratio(window: str, *extra: str, by: str = "service") -> str:
    errors = Selector(f"{HTTP_DURATION}_count", extra).with_('status_class="5xx"')
    return (f"(sum by ({by}) ({rate(errors, window)}) or {http_request_rate(window, *extra, by=by)} * 0)"
            f" / {http_request_rate(window, *extra, by=by)}")


def http_latency_quantile(q: float, window: str, *extra: str, by: str = "service") -> str:
    buckets = Selector(f"{HTTP_DURATION}_bucket", extra)
    return f"histogram_quantile({q}, sum by (le, {by}) ({rate(buckets, window)}))"


def grpc_request_rate(window: str, *extra: str, by: str = "service") -> str:
    return f"sum by ({by}) ({rate(Selector(f'{GRPC_DURATION}_count', extra), window)})"


def grpc_error_ratio(window: str, *extra: str, by: str = "service") -> str:
    errors = Selector(f"{GRPC_DURATION}_count", extra).with_(f'code=~"{GRPC_SERVER_ERROR_CODES}"')
    return (f"(sum by ({by}) ({rate(errors, window)}) or {grpc_request_rate(window, *extra, by=by)} * 0)"
            f" / {grpc_request_rate(window, *extra, by=by)}")


def grpc_latency_quantile(q: float, window: str, *extra: str, by: str = "service") -> str:
    buckets = Selector(f"{GRPC_DURATION}_bucket", extra)
    return f"histogram_quantile({q}, sum by (le, {by}) ({rate(buckets, window)}))"


def error_ratio(service: str, window: str) -> str:
    """One service's share of server errors over `window`: HTTP 5xx, or gRPC server-fault codes for payments."""
    build = grpc_error_ratio if service in GRPC_SERVICES else http_error_ratio
    return build(window, f'service="{service}"')


def latency_quantile(service: str, q: float, window: str) -> str:
    """One service's latency quantile over `window`, from its HTTP or gRPC server histogram."""
    build = grpc_latency_quantile if service in GRPC_SERVICES else http_latency_quantile
    return build(q, window, f'service="{service}"')


# -- availability of targets --------------------------------------------------------------------------------
def replicas_up(*extra: str, by: str = "service") -> str:
    return f"sum by ({by}) ({Selector('up', (SERVICE_JOBS_MATCHER, *extra))})"


# Prometheus hands discovered targets to its scrapers about 5 s after it starts (its discovery manager batches
# updates), while rules are evaluated from its first second. With a `for:` shorter than that (the native
# profile's 4 s), the absent() half would page every service at each start. `absent_grace_s` makes that half
# wait until Prometheus itself has been up that long (its own process_start_time_seconds, from its self-scrape).
def _after_warmup(expr: str, absent_grace_s: int | None) -> str:
    if not absent_grace_s:
        return expr
    return f'({expr} and on () (time() - process_start_time_seconds{{job="prometheus"}} > {absent_grace_s}))'


def service_down(service: str, absent_grace_s: int | None = None) -> str:
    """Every replica of `service` fails its scrape, or none is discovered at all.

    absent() covers a service whose targets are gone from service discovery (stopped, scaled to zero,
    never started): `max by (job)` alone returns nothing then, and a dead service would stay silent.
    Both halves carry the same labels ({job}), so the alert keeps one identity across the two cases.
    """
    absent = _after_warmup(f'absent(up{{job="{service}"}})', absent_grace_s)
    return f'max by (job) (up{{job="{service}"}}) == 0 or {absent}'


def replica_down() -> str:
    """Some replicas of a service fail their scrape while others answer (all down is ServiceDown)."""
    jobs = SERVICE_JOBS_MATCHER
    return f"up{{{jobs}}} == 0 unless on (job) (max by (job) (up{{{jobs}}}) == 0)"


# How long a restart stays visible, per profile. Not the profile's scaling of one duration: the window must hold the
# last scrape before the crash, the first one after the restart and an evaluation after that, and a replica takes as
# many real seconds to come back in the lab as anywhere. Natively (2 s scrapes and evaluations) a minute: a replica
# back within about 55 s is seen, and the ticket resolves about a minute after the restart. Standard (15 s scrapes,
# evaluations every 30 s to 1 m, a kubelet's restart back-off): five minutes.
RESTART_WINDOWS = {"native": "1m", "standard": "5m"}


def replica_restarted(window: str) -> str:
    """A replica's process started again within `window` (a crash, the kernel's OOM killer, a kill: supervisord or
    the kubelet brought it back), often too fast for ReplicaDown's `for:` to see it down: its process_start_time_seconds
    (prometheus_client's process collector) changed. The failed scrapes while it was down leave no sample in the
    range (only staleness markers, which range selection skips), so the change spans the gap; a replica seen for
    the first time (a new one, a scale-up) has no earlier value and does not count."""
    return f"changes(process_start_time_seconds{{{SERVICE_JOBS_MATCHER}}}[{window}]) > 0"


def broker_down(absent_grace_s: int | None = None) -> str:
    absent = _after_warmup(f'absent(up{{job="{BROKER_JOB}"}})', absent_grace_s)
    return f'max by (job) (up{{job="{BROKER_JOB}"}}) == 0 or {absent}'


# -- saturation, resilience and messaging -------------------------------------------------------------------
def payments_saturation(window: str | None = None, *extra: str) -> str:
    """In-flight charges over the summed concurrency limit of live replicas (1 = every slot busy)."""
    inflight = Selector("payments_inflight", extra)
    limit = Selector("payments_concurrency_limit", extra)
    if window is None:
        return f"sum by (service) ({inflight}) / sum by (service) ({limit})"
    return (f"sum by (service) (avg_over_time({inflight}[{window}]))"
            f" / sum by (service) (max_over_time({limit}[{window}]))")


def payments_saturated(window: str) -> str:
    return f"{payments_saturation(window)} > {_fmt(PAYMENTS_SATURATION_THRESHOLD)}"


def breaker_open(window: str) -> str:
    """A breaker seen open during `window`: an open breaker flips to half-open every reset period, so an
    instant `== 2` would blink; max_over_time keeps it visible for the whole outage."""
    return f"max by (service, upstream) (max_over_time(circuit_breaker_state[{window}])) == 2"


def outbox_backlog_growing(window: str) -> str:
    return (f"(sum by (service) (outbox_backlog) > 0)"
            f" and (sum by (service) (deriv(outbox_backlog[{window}])) > 0)")


def queue_messages(queue: str, *, ready_only: bool = False) -> str:
    # rabbitmq_prometheus with prometheus.return_per_object_metrics = true: per-queue series on /metrics.
    metric = "rabbitmq_queue_messages_ready" if ready_only else "rabbitmq_queue_messages"
    return f'sum by (queue) ({metric}{{queue="{queue}"}})'


def dead_letter_not_empty() -> str:
    return f"{queue_messages(DEAD_LETTER_QUEUE)} > 0"


def consumer_stalled(stall_s: int) -> str:
    """Ready messages wait while no consumer replica has processed one for `stall`.

    `unless` rather than `and`: when every consumer replica is gone its timestamp series are gone too,
    and a queue filling up with nobody left to consume it is the worst stall of all.
    """
    return (f"{queue_messages(ORDER_EVENTS_QUEUE, ready_only=True)} > 0"
            f" unless on (queue) (max by (queue) (consumer_last_success_timestamp_seconds"
            f'{{queue="{ORDER_EVENTS_QUEUE}"}}) > time() - {stall_s})')


# Ready messages above this in the order events queue: notifications is falling behind (a slow or starved consumer,
# a capped link). Small on purpose: the lab's rates are a few orders a second.
CONSUMER_LAG_THRESHOLD = 20
# A replica's wall clock off by more than this from Prometheus' (JWT verification allows 60 s: warn before that).
CLOCK_SKEW_THRESHOLD_S = 30


def consumer_lag_high() -> str:
    return f"{queue_messages(ORDER_EVENTS_QUEUE, ready_only=True)} > {CONSUMER_LAG_THRESHOLD}"


def clock_skew() -> str:
    """Each replica's wall clock (clock_time_seconds, read at the scrape) minus the scrape's own timestamp, taken
    by Prometheus' clock: node_exporter's NodeClockSkewDetected, per replica (a process can have its own clock)."""
    return (f"max by (service, replica) (abs(clock_time_seconds - timestamp(clock_time_seconds)))"
            f" > {CLOCK_SKEW_THRESHOLD_S}")


# -- mutual TLS and caller authorization (services/kit/tls.py, authz.py) ------------------------------------------
# What is left of a certificate's life below which renewal (due at half of it: chaoslab.lab.pki) has been failing
# for a quarter of its life: a ticket, before anything expires. An expired certificate is below it too.
CERT_LIFE_LEFT_THRESHOLD = 0.25


def handshake_failures(window: str) -> str:
    """TLS handshakes that failed, per replica and side: a peer with no certificate, an expired one, one of
    another CA, or one for another name. The replica that counts is the one that saw it (a server refusing a client's
    certificate, a client refusing a server's)."""
    return (f"sum by (service, replica, side, reason) (increase(tls_handshake_failures_total[{window}])) > 0")


def certificate_expiring() -> str:
    """The share of each replica's certificate's life that is left, where it is below the threshold."""
    left = ("(tls_certificate_expiry_timestamp_seconds - time())"
            " / (tls_certificate_expiry_timestamp_seconds - tls_certificate_not_before_timestamp_seconds)")
    return f"min by (service, replica, identity) ({left}) < {CERT_LIFE_LEFT_THRESHOLD}"


def callers_denied(window: str) -> str:
    """Calls a service refused because its caller's identity may not call it (the call graph)."""
    return f"sum by (service, caller, callee, protocol) (increase(authz_denied_total[{window}])) > 0"
