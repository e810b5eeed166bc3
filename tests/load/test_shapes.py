"""Load-shape math and the scenario catalogue (no lab, no Locust)."""

from __future__ import annotations

import pytest

from loadtests import scenarios, shapes

pytestmark = pytest.mark.quick


def users_over_time(plan: list[shapes.Stage], step_s: float = 1.0) -> list[int]:
    out, t = [], 0.0
    while (target := shapes.target_at(plan, t)) is not None:
        out.append(target[0])
        t += step_s
    return out


def test_step_users_are_equal_steps_that_never_go_down() -> None:
    assert shapes.step_users(25, 5) == [5, 10, 15, 20, 25]
    assert shapes.step_users(10, 4) == [2, 5, 8, 10]
    assert shapes.step_users(2, 5) == [1, 1, 1, 2, 2]  # fewer users than steps: still monotonic, never 0


def test_step_plan_holds_each_step_for_an_equal_share_of_the_run() -> None:
    plan = shapes.step(30, 60, steps=3)
    assert [(s.until_s, s.users) for s in plan] == [(20, 10), (40, 20), (60, 30)]
    assert users_over_time(plan, 10) == [10, 10, 20, 20, 30, 30]
    assert shapes.target_at(plan, 60) is None  # the run ends with the plan


def test_ramp_is_one_linear_spawn_then_a_hold() -> None:
    plan = shapes.ramp(20, 100)
    assert plan[0].until_s == 60 and plan[0].users == 20
    assert plan[0].spawn_rate == pytest.approx(20 / 60)  # Locust reaches 20 users exactly at 60 s
    assert plan[1].until_s == 100 and plan[1].users == 20


def test_spike_goes_from_a_baseline_to_the_peak_and_back() -> None:
    plan = shapes.spike(30, 100)
    assert [s.users for s in plan] == [6, 30, 6]
    assert [s.until_s for s in plan] == pytest.approx([30, 60, 100])
    assert plan[1].spawn_rate == shapes.FAST_SPAWN_PER_S  # 24 more users "at once"


def test_soak_ramps_for_at_most_a_minute() -> None:
    assert shapes.soak(10, 1800)[0].until_s == 60
    assert shapes.soak(10, 100)[0].until_s == 10


def test_stage_index_and_start() -> None:
    plan = shapes.step(10, 30, steps=3)
    assert [shapes.stage_index(plan, t) for t in (0, 9.9, 10, 29.9, 30)] == [0, 0, 1, 2, None]
    assert [shapes.stage_start(plan, i) for i in range(3)] == [0, 10, 20]
    assert shapes.duration(plan) == 30


def test_constant_rate_maps_to_users_times_per_user_throughput() -> None:
    assert shapes.rate_users(10) == 10  # one request per second per user
    assert shapes.rate_users(2.5, pacing_s=2) == 5
    assert shapes.rate_users(0.2) == 1
    users = shapes.rate_users(25)
    assert shapes.per_user_throughput(25, users) * users == pytest.approx(25)
    assert shapes.per_user_throughput(10, 4) == 2.5


@pytest.mark.parametrize("call", [
    lambda: shapes.step(0, 10), lambda: shapes.ramp(5, 0), lambda: shapes.step_users(5, 0),
    lambda: shapes.rate_users(0), lambda: shapes.per_user_throughput(5, 0),
])
def test_bad_numbers_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_every_scenario_has_a_plan_that_ends_and_thresholds(name: str) -> None:
    scenario = scenarios.get(name)
    params = scenario.params(users=7, duration_s=30)
    plan = scenario.plan(params)
    assert shapes.duration(plan) == pytest.approx(30)
    assert max(s.users for s in plan) == 7
    thresholds = scenario.thresholds(params)
    assert 0 <= thresholds.max_error_ratio < 0.1 and thresholds.min_rps > 0
    assert any(limit.selector == "*" and limit.p95_ms and limit.p99_ms for limit in thresholds.latency)


def test_scenario_parameters_default_and_validate() -> None:
    rate = scenarios.get("rate")
    assert rate.params() == scenarios.Params(users=10, duration_s=60, rate=10.0)
    assert rate.params(rate=30).users == 30
    assert rate.thresholds(rate.params(rate=30)).min_rps == pytest.approx(27)
    assert scenarios.get("smoke").params(users=4).users == 4
    with pytest.raises(ValueError, match="rate scenario only"):
        scenarios.get("ramp").params(rate=5)
    with pytest.raises(ValueError, match="at least 1"):
        scenarios.get("ramp").params(users=0)
    with pytest.raises(ValueError, match="known: smoke, ramp, step, spike, soak, rate"):
        scenarios.get("stress")


def test_another_mix_drops_the_throughput_floor_sized_for_shoppers() -> None:
    step = scenarios.get("step")
    params = step.params()
    assert scenarios.thresholds_for(step, params, "orders").min_rps == 0
    assert scenarios.thresholds_for(step, params, "shop").min_rps > 0


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400),
                                               ("2m30s", 150), ("1.5m", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert scenarios.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-5", "5mm"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        scenarios.parse_duration(text)
