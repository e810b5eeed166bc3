"""Threshold evaluation and command-line overrides (no lab)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.thresholds import (
    LatencyLimit,
    Thresholds,
    apply_overrides,
    evaluate,
    limit_for,
)

pytestmark = pytest.mark.quick


def row(name: str, method: str = "GET", requests: int = 100, failures: int = 0, p95: float = 50,
        p99: float = 90, rps: float = 10.0) -> dict[str, Any]:
    return {"method": method, "name": name, "requests": requests, "failures": failures, "rps": rps,
            "p95_ms": p95, "p99_ms": p99}


def summary(*entries: dict[str, Any], total: dict[str, Any] | None = None) -> dict[str, Any]:
    if total is None:
        total = row("Aggregated", "", sum(e["requests"] for e in entries), sum(e["failures"] for e in entries),
                    max(e["p95_ms"] for e in entries), max(e["p99_ms"] for e in entries),
                    sum(e["rps"] for e in entries))
    return {"total": total, "entries": list(entries)}


LIMITS = (
    LatencyLimit("*", 500, 1000),
    LatencyLimit("/api/orders", 800, None),
    LatencyLimit("POST /api/orders", None, 1500),
    LatencyLimit("Aggregated", 600, 1200),
)


def test_the_most_specific_selector_wins_per_percentile() -> None:
    assert limit_for(LIMITS, "GET", "/api/users/me", "p95") == 500
    assert limit_for(LIMITS, "POST", "/api/orders", "p95") == 800  # the name beats *
    assert limit_for(LIMITS, "POST", "/api/orders", "p99") == 1500  # method and name beat both
    assert limit_for(LIMITS, "GET", "/api/orders", "p99") == 1000  # falls back to * for the unset percentile
    assert limit_for(LIMITS, "", "Aggregated", "p95") == 600  # * never applies to the total
    assert limit_for((LatencyLimit("*", 1, 1),), "", "Aggregated", "p95") is None


def test_a_healthy_summary_passes_every_check() -> None:
    verdict = evaluate(Thresholds(0.01, 5.0, LIMITS), summary(row("/api/users/me"), row("/api/orders", "POST")))
    assert verdict.passed, verdict.failed
    names = [c.what for c in verdict.checks]
    assert names[:2] == ["error ratio", "throughput"]
    assert "p99 POST /api/orders" in names and "p95 Aggregated" in names


@pytest.mark.parametrize(
    ("entries", "failed"),
    [
        ((row("/api/users/me", failures=2),), "error ratio"),  # 2% > 1%
        ((row("/api/users/me", rps=1.0),), "throughput"),
        ((row("/api/users/me", p95=501),), "p95 GET /api/users/me"),
        ((row("/api/orders", "POST", p95=700, p99=1600),), "p99 POST /api/orders"),
    ],
)
def test_each_kind_of_violation_is_reported(entries: tuple[dict[str, Any], ...], failed: str) -> None:
    verdict = evaluate(Thresholds(0.01, 5.0, LIMITS), summary(*entries))
    assert not verdict.passed
    assert failed in [c.what for c in verdict.failed]


def test_an_empty_run_fails_the_throughput_check() -> None:
    verdict = evaluate(Thresholds(0.01, 0.0, ()), summary(total=row("Aggregated", "", 0, 0, 0, 0, 0.0)))
    assert [c.what for c in verdict.failed] == ["throughput"]


def test_too_few_samples_skip_a_percentile_rather_than_judge_a_maximum() -> None:
    verdict = evaluate(Thresholds(1.0, 0.0, LIMITS, min_samples=5),
                       summary(row("/api/users/me", requests=3, p95=9999, p99=9999),
                               total=row("Aggregated", "", 50, 0, 10, 10)))
    skipped = [c for c in verdict.checks if c.skipped]
    assert {c.what for c in skipped} == {"p95 GET /api/users/me", "p99 GET /api/users/me"}
    assert verdict.passed


def test_overrides_change_one_value_and_keep_the_rest() -> None:
    base = Thresholds(0.01, 5.0, LIMITS)
    changed = apply_overrides(base, ["p95=300", "p99:POST /api/orders=700", "error_ratio=0.05", "min_rps=2",
                                     "p95:/api/new=10"])
    assert changed.max_error_ratio == 0.05 and changed.min_rps == 2
    assert limit_for(changed.latency, "GET", "/api/users/me", "p95") == 300
    assert limit_for(changed.latency, "POST", "/api/orders", "p99") == 700
    assert limit_for(changed.latency, "POST", "/api/orders", "p95") == 800  # untouched
    assert limit_for(changed.latency, "GET", "/api/new", "p95") == 10
    assert base.latency == LIMITS  # frozen: the scenario's own thresholds never change


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95", "expected KEY"),
        ("p97=3", "unknown key"),
        ("p95=fast", "is not a number"),
        ("p95=-1", "non-negative"),
        ("error_ratio=2", "between 0 and 1"),
        ("min_rps:/api/orders=3", "whole run"),
    ],
)
def test_bad_overrides_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_overrides(Thresholds(0.01, 1.0), [text])
