"""The SLO catalogue and the profiles that scale it."""

from __future__ import annotations

import importlib

import pytest

from chaoslab.observability import slos
from chaoslab.observability.profiles import NATIVE, STANDARD, format_duration, parse_duration

pytestmark = pytest.mark.quick


def test_every_service_has_an_availability_and_a_latency_slo() -> None:
    assert {(s.service, s.kind) for s in slos.SLOS} == {
        (service, kind) for service in slos.SERVICES for kind in ("availability", "latency")}


def test_latency_thresholds_are_histogram_buckets() -> None:
    """A threshold that is not a bucket boundary selects no `le` series: the SLO would measure nothing."""
    kit_metrics = importlib.import_module("services.kit.metrics")
    for item in slos.SLOS:
        if item.kind == "latency":
            assert item.threshold_s in kit_metrics.LATENCY_BUCKETS, item.name


def test_durations_round_trip() -> None:
    for text in ("10s", "1m", "2h24m", "3d", "1d2h", "0s"):
        assert format_duration(parse_duration(text)) == text
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_native_divides_by_thirty_with_a_four_scrape_floor() -> None:
    assert [NATIVE.window(w) for w in slos.BURN_WINDOWS] == ["10s", "1m", "2m", "4m", "12m", "48m", "2h24m"]
    assert [STANDARD.window(w) for w in slos.BURN_WINDOWS] == list(slos.BURN_WINDOWS)
    assert NATIVE.window("2m") == "8s"  # 4s would hold two scrapes of 2s
    assert NATIVE.hold("2m") == "4s"
    with pytest.raises(ValueError):
        NATIVE.hold("1m10s")  # does not scale to whole seconds


def test_burn_condition_uses_both_windows_of_each_pair() -> None:
    item = slos.slo("orders", "availability")
    fast = next(a for a in slos.BURN_ALERTS if a.severity == "page")
    expr = slos.burn_condition(item, fast, STANDARD.window)
    assert expr == ('(slo:sli_error:ratio_rate1h{slo="orders-availability"} > 0.0144 and '
                    'slo:sli_error:ratio_rate5m{slo="orders-availability"} > 0.0144) or '
                    '(slo:sli_error:ratio_rate6h{slo="orders-availability"} > 0.006 and '
                    'slo:sli_error:ratio_rate30m{slo="orders-availability"} > 0.006)')
