"""Run as a script by test_stats_math.py: exercises the Locust-dependent modules (summary windows, the stage
recorder, the exporter's collector) on synthetic statistics and prints the results as JSON.

A separate process because importing Locust monkey-patches the standard library with gevent, which the pytest
process running everyone's tests must not inherit.
"""

from __future__ import annotations

import json
import time

from locust.stats import RequestStats

from loadtests import exporter, shapes
from loadtests.recorder import StageRecorder
from loadtests.summary import snapshot, summarize, window


class FakeRunner:
    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats
        self.user_count = 7


class FakeEnvironment:
    def __init__(self, runner: FakeRunner) -> None:
        self.runner = runner


def main() -> None:
    out: dict[str, object] = {}
    stats = RequestStats()
    for _ in range(90):
        stats.log_request("GET", "/api/users/me", 10, 100)
    for _ in range(10):
        stats.log_request("GET", "/api/users/me", 1000, 100)
    stats.log_error("GET", "/api/users/me", "HTTP 429 Too Many Requests")
    before = snapshot(stats, at=100.0)
    for _ in range(50):
        stats.log_request("POST", "/api/orders", 200, 100)
    for _ in range(50):
        stats.log_request("PATCH", "/api/users/me", 40, 100)
    after = snapshot(stats, at=110.0)
    out["window"] = window(before, after)
    out["summary"] = summarize(stats)

    # exporter: merged per-name quantiles over the last 10 s (one cached second 10 s ago)
    fresh = RequestStats(use_response_times_cache=True)
    now = time.time()
    for entry in (fresh.get("/api/users/me", "GET"), fresh.get("/api/users/me", "PATCH"), fresh.total):
        entry._cache_response_times(int(now) - 10)
    for _ in range(80):
        fresh.log_request("GET", "/api/users/me", 20, 10)
    for _ in range(20):
        fresh.log_request("PATCH", "/api/users/me", 300, 10)
    out["quantiles"] = exporter.quantiles_by_name(list(fresh.entries.values()), fresh.total, now)
    collector = exporter.LocustCollector(FakeEnvironment(FakeRunner(fresh)), lambda: ("smoke", "shop"))
    out["samples"] = [[s.name, s.labels, s.value] for family in collector.collect() for s in family.samples]

    # recorder: two steps of 10 s, measured after 35% of each
    rec_stats = RequestStats()
    clock = {"t": 0.0}
    recorder = StageRecorder(shapes.step(4, 20, steps=2), lambda: snapshot(rec_stats, at=clock["t"]), lambda: 4)
    for second in range(21):
        clock["t"] = float(second)
        recorder.observe(float(second))
        for _ in range(5 if second < 10 else 10):  # 5 req/s in step 1, 10 req/s in step 2
            rec_stats.log_request("POST", "/api/orders", 100 if second < 10 else 250, 10)
    recorder.finish()
    out["steps"] = recorder.steps
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
