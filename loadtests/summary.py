"""Run summaries from Locust's statistics: the whole run, and windows of it (one per stage of a shape).

A summary is plain JSON: {"total": row, "entries": [row, ...]} with rows
{"method", "name", "requests", "failures", "rps", "ok_rps", "failures_per_s", "avg_ms", "p50_ms", "p95_ms",
"p99_ms", "max_ms"}. thresholds.evaluate() reads it, `chaoslab load` prints it, scale-test reads the windows.
Percentiles of a window come from the difference of Locust's response-time histograms at its two ends,
so a step's p95 is the p95 of that step's requests only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from locust.stats import RequestStats, StatsEntry, calculate_response_time_percentile, diff_response_time_dicts

Key = tuple[str, str]  # (method, name)


def _ms(value: float | None) -> float:
    return round(float(value or 0.0), 1)


def entry_row(entry: StatsEntry) -> dict[str, Any]:
    """The whole run of one request name (or the total), as Locust's CSV and HTML report count it."""
    requests, failures = entry.num_requests, entry.num_failures
    rps = entry.total_rps
    return {
        "method": entry.method or "",
        "name": entry.name,
        "requests": requests,
        "failures": failures,
        "rps": round(rps, 3),
        "ok_rps": round(rps * (requests - failures) / requests, 3) if requests else 0.0,
        "failures_per_s": round(entry.total_fail_per_sec, 3),
        "avg_ms": _ms(entry.avg_response_time),
        "p50_ms": _ms(entry.get_response_time_percentile(0.5)) if requests else 0.0,
        "p95_ms": _ms(entry.get_response_time_percentile(0.95)) if requests else 0.0,
        "p99_ms": _ms(entry.get_response_time_percentile(0.99)) if requests else 0.0,
        "max_ms": _ms(entry.max_response_time) if requests else 0.0,
    }


def summarize(stats: RequestStats) -> dict[str, Any]:
    entries = sorted(stats.entries.values(), key=lambda e: (e.name, e.method or ""))
    errors = sorted(stats.errors.values(), key=lambda e: -e.occurrences)
    return {
        "total": entry_row(stats.total),
        "entries": [entry_row(e) for e in entries],
        "errors": [{"method": e.method, "name": e.name, "error": str(e.error), "occurrences": e.occurrences}
                   for e in errors[:20]],
    }


# --- windows -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    requests: int
    failures: int
    timed: int  # requests with a response time (Locust's num_requests - num_none_requests)
    response_times: dict[int, int]


@dataclass(frozen=True)
class Snapshot:
    at: float  # wall clock (time.time())
    total: Counts
    entries: dict[Key, Counts] = field(default_factory=dict)


def _counts(entry: StatsEntry) -> Counts:
    return Counts(entry.num_requests, entry.num_failures, entry.num_requests - entry.num_none_requests,
                  dict(entry.response_times))


def snapshot(stats: RequestStats, at: float | None = None) -> Snapshot:
    return Snapshot(
        at=time.time() if at is None else at,
        total=_counts(stats.total),
        entries={(e.method or "", e.name): _counts(e) for e in stats.entries.values()},
    )


def window_row(method: str, name: str, before: Counts | None, after: Counts, seconds: float) -> dict[str, Any]:
    empty = Counts(0, 0, 0, {})
    before = before or empty
    requests, failures = after.requests - before.requests, after.failures - before.failures
    histogram = diff_response_time_dicts(after.response_times, before.response_times)
    timed = after.timed - before.timed

    def pct(p: float) -> float:
        return _ms(calculate_response_time_percentile(histogram, timed, p)) if timed > 0 else 0.0

    seconds = max(seconds, 1e-9)
    return {
        "method": method,
        "name": name,
        "requests": requests,
        "failures": failures,
        "rps": round(requests / seconds, 3),
        "ok_rps": round((requests - failures) / seconds, 3),
        "failures_per_s": round(failures / seconds, 3),
        "avg_ms": 0.0,  # not derivable from histograms exactly; the percentiles are what a window is read for
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": _ms(max((k for k, v in histogram.items() if v > 0), default=0)),
    }


def window(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """The requests between two snapshots, in the summary's shape, with the window's length."""
    seconds = after.at - before.at
    rows = [window_row(m, n, before.entries.get((m, n)), counts, seconds)
            for (m, n), counts in sorted(after.entries.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    return {
        "seconds": round(seconds, 3),
        "total": window_row("", "Aggregated", before.total, after.total, seconds),
        "entries": [r for r in rows if r["requests"] > 0],
    }
