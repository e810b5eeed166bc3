"""Measurements a gameday takes from Prometheus after each experiment.

time-to-recover: from the fault's undoing to the steady state holding again (plan: `steady`): every target of
the lab up and the gateway's server error ratio (the SLO query of chaoslab/observability) within budget, for
`hold_s` in a row. Read from a 1 s range query; the resolution is the lab's 2 s scrape interval.

the client's view: Locust's own exporter, scraped by the lab's Prometheus as job=locust, through the load
dashboard's queries: the failure ratio over the window, and the worst of Locust's rolling (~10 s) latency
percentiles while the window lasted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from chaoslab.clients.prometheus import Prometheus, Series
from chaoslab.gameday import panels
from chaoslab.gameday.journal import FaultWindow
from chaoslab.gameday.plan import SteadySpec
from chaoslab.observability import slos

SCRAPE_S = 2.0
PROMETHEUS_TIMEOUT_S = 15.0  # range queries over a whole gameday take a while on a busy machine
MIN_CLIENT_WINDOW_S = 10.0  # an instant fault (a SIGKILL) is judged on what clients saw right after it
LOADTEST = "chaoslab-loadtest"
TARGETS_UP = f'min(up{{job=~"{slos.SERVICE_JOBS}|{slos.BROKER_JOB}"}})'


@dataclass
class Recovery:
    recovered: bool
    at: float | None  # when the steady state started to hold again
    seconds: float | None  # from the fault's undoing
    waited_until: float


@dataclass
class ClientView:
    start: float
    end: float
    requests: int
    failures: int
    error_ratio: float | None  # None: no request in the window
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


def _by_time(series: list[Series], combine: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for s in series:
        for t, v in s.points:
            t = round(t, 3)
            out[t] = v if t not in out else (min(out[t], v) if combine == "min" else max(out[t], v))
    return out


def first_steady(up: dict[float, float], errors: dict[float, float], start: float, max_ratio: float,
                 hold_s: float) -> float | None:
    """The first time >= start from which every sample holds for `hold_s` (up == 1 and errors <= max_ratio;
    no error sample means no traffic, which holds). None when it never does within the samples."""
    times = sorted(t for t in up if t >= start)

    def holds(t: float) -> bool:
        return up.get(t, 0.0) >= 1.0 and errors.get(t, 0.0) <= max_ratio

    for i, t in enumerate(times):
        if times[-1] < t + hold_s:
            return None  # not enough samples yet to know that it holds
        if all(holds(u) for u in times[i:] if u <= t + hold_s):
            return t
    return None


def time_to_recover(prometheus: str, window: FaultWindow, steady: SteadySpec, bound_s: float,
                    poll_s: float = SCRAPE_S) -> Recovery:
    """Poll until the steady state holds again, or until the bound (plus its hold and a scrape) has passed."""
    errors_query = slos.http_error_ratio(steady.window, 'service="gateway"')
    prom = Prometheus(prometheus, timeout_s=PROMETHEUS_TIMEOUT_S)
    deadline = window.end + bound_s + steady.hold_s + 2 * SCRAPE_S
    while True:
        now = time.time()
        end = min(now, deadline)
        up = _by_time(prom.query_range(TARGETS_UP, window.end, end, 1.0), "min")
        errors = _by_time(prom.query_range(errors_query, window.end, end, 1.0), "max")
        at = first_steady(up, errors, window.end, steady.max_error_ratio, steady.hold_s)
        if at is not None:
            return Recovery(True, at, round(max(0.0, at - window.end), 3), end)
        if now >= deadline:
            return Recovery(False, None, None, end)
        time.sleep(poll_s)


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value))}s"


def client_view(prometheus: str, start: float, end: float) -> ClientView:
    end = max(end, start + MIN_CLIENT_WINDOW_S)
    window = _seconds(end - start)
    prom = Prometheus(prometheus, timeout_s=PROMETHEUS_TIMEOUT_S)
    [ratio_q] = panels.queries(LOADTEST, "Failure ratio", window)
    ratio = prom.query(ratio_q.expr, at=end)
    counts = {}
    for metric in ("locust_requests_total", "locust_failures_total"):
        found = prom.query(f"sum(increase({metric}[{window}]))", at=end)
        counts[metric] = int(round(found[0].value)) if found else 0
    [latency_q] = panels.queries(LOADTEST, "Response time by endpoint", window)
    worst: dict[str, float] = {}
    for series in prom.query_range(latency_q.expr, start, end, SCRAPE_S):
        if series.labels.get("name") == "Aggregated" and series.points:
            worst[series.labels.get("quantile", "")] = max(v for _, v in series.points)
    return ClientView(start, end, counts["locust_requests_total"], counts["locust_failures_total"],
                      round(ratio[0].value, 5) if ratio else None,
                      worst.get("0.5"), worst.get("0.95"), worst.get("0.99"))
