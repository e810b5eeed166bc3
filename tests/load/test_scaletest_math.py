"""scale-test's reading of a step run: plateau, knee, efficiency (no lab)."""

from __future__ import annotations

from typing import Any

import pytest

from chaoslab.load.runner import LoadRequest, locust_args
from chaoslab.load.scaletest import PATHS, efficiencies, parse_replicas, saturation
from chaoslab.load.target import Target

pytestmark = pytest.mark.quick


def step(users: int, ok_rps: float, p95: float, failures: int = 0) -> dict[str, Any]:
    return {"label": f"{users} users", "users": users, "users_running": users, "entries": [
        {"method": "POST", "name": "/api/orders", "requests": int(ok_rps * 10) + failures, "failures": failures,
         "ok_rps": ok_rps, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2},
        {"method": "POST", "name": "/api/auth/login", "requests": 4, "failures": 0, "ok_rps": 0.4,
         "p50_ms": 90, "p95_ms": 100, "p99_ms": 100},
    ]}


def test_the_plateau_and_its_knee() -> None:
    result = saturation([step(4, 12, 250), step(8, 19.5, 300), step(12, 20, 500), step(16, 19.8, 700)],
                        PATHS["payments"])
    assert result["throughput"] == pytest.approx((19.5 + 20 + 19.8) / 3, abs=0.01)
    assert result["knee_users"] == 8 and result["p95_ms"] == 300  # latency where saturation begins
    assert result["saturated"] is True
    assert [c["ok_rps"] for c in result["curve"]] == [12, 19.5, 20, 19.8]


def test_a_curve_still_climbing_is_not_saturated() -> None:
    result = saturation([step(4, 10, 200), step(8, 20, 210), step(12, 30, 220)], PATHS["payments"])
    assert result["saturated"] is False
    assert result["throughput"] == 30


def test_one_stalled_step_does_not_unsaturate_a_flat_curve() -> None:
    # the CI run's 3-replica curve: a step that stalled (15.8) between two plateau steps
    curve = [step(5, 17.0, 450), step(10, 21.8, 740), step(14, 23.5, 1000), step(19, 15.8, 1400),
             step(24, 23.8, 1500)]
    assert saturation(curve, PATHS["payments"])["saturated"] is True
    # still climbing past the best earlier step is not saturated, stall or not
    climbing = curve[:-1] + [step(24, 27.0, 1500)]
    assert saturation(climbing, PATHS["payments"])["saturated"] is False


def test_errors_are_counted_over_the_whole_curve() -> None:
    result = saturation([step(4, 10, 200, failures=1), step(8, 10, 200, failures=1)], PATHS["payments"])
    assert result["error_ratio"] == pytest.approx(2 / 202, abs=1e-4)


def test_efficiency_is_throughput_over_n_times_one_replica() -> None:
    points = [{"replicas": 1, "throughput": 20.0}, {"replicas": 2, "throughput": 39.0},
              {"replicas": 3, "throughput": 55.5}]
    efficiencies(points)
    assert [p["efficiency"] for p in points] == [1.0, 0.975, 0.925]
    assert points[2]["speedup"] == pytest.approx(2.775)


def test_replica_lists() -> None:
    assert parse_replicas("3,1,2") == [1, 2, 3]
    for bad in ("", "0,1", "1,1", "2,3", "a"):
        with pytest.raises(ValueError):
            parse_replicas(bad)


def test_locust_command_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = Target("http://127.0.0.1:18000", 18030, None)
    args = locust_args(LoadRequest("rate", target, tmp_path, rate=25, duration_s=30, thresholds=["p95=1", "p99=2"]))
    joined = " ".join(args)
    assert "--headless" in args and "--scenario rate" in joined and "--rate 25" in joined
    assert "--duration 30s" in joined and "--thresholds p95=1;p99=2" in joined
    assert "--metrics-port 18030" in joined and "--csv-full-history" in args and "--html" in args
    ui = locust_args(LoadRequest("smoke", target, tmp_path, ui=True, workers=2), master_port=5999, web_port=8999)
    assert "--headless" not in ui and "--autostart" in ui and "--web-port" in ui
    assert "--master" in ui and "--expect-workers" in ui and "5999" in ui
