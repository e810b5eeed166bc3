"""Locust's client-side statistics for Prometheus, so dashboards show the client's view beside the servers'.

A prometheus-client collector reads `runner.stats` at scrape time (nothing is recorded twice), served by a gevent
WSGI server on the master or the standalone runner (workers hold only their share). Names (what the dashboards
and alert rules query):

    locust_users                                  gauge    users running now
    locust_requests_per_second                    gauge    all requests, last ~10 s
    locust_failures_per_second                    gauge    failed requests, last ~10 s
    locust_response_time_seconds{name,quantile}   gauge    0.5/0.95/0.99 over the last ~10 s; name="Aggregated" is all
    locust_requests_total{name,method}            counter
    locust_failures_total{name,method}            counter
    locust_run_info{scenario,mix}                 gauge    1 while this generator runs

The port comes from --metrics-port / LOCUST_METRICS_PORT (default 9646 in containers; the native lab passes its
B+30, which its Prometheus scrapes as job=locust); 0 turns the exporter off.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from locust.stats import (
    CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW,
    StatsEntry,
    calculate_response_time_percentile,
    diff_response_time_dicts,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 9646
QUANTILES = (0.5, 0.95, 0.99)


def recent_histogram(entry: StatsEntry, now: float | None = None) -> tuple[dict[int, int], int] | None:
    """The response-time histogram of the entry's last ~10 s and its count, as Locust's own "current"
    percentiles compute it (from the per-second cache), or None before the cache covers the window."""
    cache = entry.response_times_cache
    if not cache:
        return None
    t = int(now if now is not None else time.time())
    wanted = t - CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW
    for offset in (0, *[s * i for i in range(1, 9) for s in (-1, 1)]):
        cached = cache.get(wanted + offset)
        if cached is not None:
            count = (entry.num_requests - entry.num_none_requests) - (cached.num_requests - cached.num_none_requests)
            return diff_response_time_dicts(entry.response_times, cached.response_times), count
    return None


def merge(parts: list[tuple[dict[int, int], int]]) -> tuple[dict[int, int], int]:
    merged: dict[int, int] = defaultdict(int)
    total = 0
    for histogram, count in parts:
        for bucket, n in histogram.items():
            merged[bucket] += n
        total += count
    return dict(merged), total


def quantiles_by_name(entries: list[StatsEntry], total: StatsEntry,
                      now: float | None = None) -> dict[str, dict[float, float]]:
    """{name: {quantile: seconds}} over the last ~10 s. Requests of one name with several methods
    (GET and PATCH /api/users/me) are merged, since the contract's label set is {name, quantile}."""
    by_name: dict[str, list[tuple[dict[int, int], int]]] = defaultdict(list)
    for entry in entries:
        recent = recent_histogram(entry, now)
        if recent is not None:
            by_name[entry.name].append(recent)
    aggregated = recent_histogram(total, now)
    if aggregated is not None:
        by_name[total.name].append(aggregated)
    out: dict[str, dict[float, float]] = {}
    for name, parts in by_name.items():
        histogram, count = merge(parts)
        if count > 0:
            out[name] = {q: calculate_response_time_percentile(histogram, count, q) / 1000.0 for q in QUANTILES}
    return out


class LocustCollector:
    """Reads the runner's statistics when Prometheus scrapes."""

    def __init__(self, environment: Any, labels: Callable[[], tuple[str, str]] = lambda: ("", "")) -> None:
        self.environment = environment
        self.labels = labels  # (scenario, mix) of the run going on

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runner = self.environment.runner
        if runner is None:
            return
        stats = runner.stats
        info = GaugeMetricFamily("locust_run_info", "1 while this load generator runs", labels=["scenario", "mix"])
        info.add_metric(list(self.labels()), 1)
        yield info
        yield GaugeMetricFamily("locust_users", "Simulated users running now", value=runner.user_count)
        yield GaugeMetricFamily("locust_requests_per_second", "Requests per second over the last ~10 s",
                                value=stats.total.current_rps)
        yield GaugeMetricFamily("locust_failures_per_second", "Failed requests per second over the last ~10 s",
                                value=stats.total.current_fail_per_sec)
        latency = GaugeMetricFamily("locust_response_time_seconds",
                                    "Response time quantiles over the last ~10 s, per request name",
                                    labels=["name", "quantile"])
        entries = list(stats.entries.values())
        for name, values in sorted(quantiles_by_name(entries, stats.total).items()):
            for q, seconds in values.items():
                latency.add_metric([name, str(q)], seconds)
        yield latency
        requests = CounterMetricFamily("locust_requests", "Requests sent, per request name and method",
                                       labels=["name", "method"])
        failures = CounterMetricFamily("locust_failures", "Failed requests, per request name and method",
                                       labels=["name", "method"])
        for entry in entries:
            requests.add_metric([entry.name, entry.method or ""], entry.num_requests)
            failures.add_metric([entry.name, entry.method or ""], entry.num_failures)
        yield requests
        yield failures


def start(environment: Any, host: str, port: int,
          labels: Callable[[], tuple[str, str]] = lambda: ("", "")) -> Any | None:
    """Serve /metrics on host:port in this (gevent) process; the server, or None when off or failing.

    A port that is taken is logged, not fatal: the load test matters more than its dashboard
    (`chaoslab load` checks the port before it starts Locust).
    """
    if port <= 0:
        return None
    try:
        from gevent.pywsgi import WSGIServer
        from prometheus_client import CollectorRegistry, make_wsgi_app
        from prometheus_client.process_collector import ProcessCollector
    except ImportError as exc:  # a bare Locust image without prometheus-client
        log.error("Prometheus exporter off: %s (pip install prometheus-client)", exc)
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LocustCollector(environment, labels))
    ProcessCollector(registry=registry)  # the generator's own CPU: is the generator the bottleneck?
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None, error_log=None)
    try:
        server.start()
    except OSError as exc:
        log.error("Prometheus exporter off: cannot listen on %s:%d: %s", host, port, exc)
        return None
    log.info("Prometheus exporter on http://%s:%d/metrics", host, port)
    return server
