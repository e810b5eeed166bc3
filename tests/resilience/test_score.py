"""The resilience score (quick): credit per verdict (partial for near misses), categories, weights from a plan
and their renormalisation when a category is absent, inconclusive verdicts left out, a lab that never came up."""

from __future__ import annotations

from typing import Any

import pytest

from chaoslab.gameday import plan as plans
from chaoslab.gameday import score

pytestmark = pytest.mark.quick


def v(suite: str, name: str, passed: bool, measured: float | None = None, bound: float | None = None,
      **extra: Any) -> dict[str, Any]:
    return {"suite": suite, "name": name, "passed": passed, "measured": measured, "bound": bound, **extra}


def test_every_verdict_passed_scores_100() -> None:
    verdicts = [v("lab", "lab up and ready", True), v("kill", "steady state before", True),
                v("kill", "time-to-recover", True, 3.0, 15.0), v("kill", "client error ratio", True, 0.0, 0.01),
                v("kill", "data audit", True)]
    assert score.compute(verdicts).value == 100.0


def test_a_near_miss_earns_partial_credit_and_a_rout_none() -> None:
    assert score.credit(v("x", "time-to-recover", False, 18.0, 15.0)) == pytest.approx(0.8)
    assert score.credit(v("x", "time-to-recover", False, 45.0, 15.0)) == 0.0
    assert score.credit(v("x", "alert X notified", False)) == 0.0
    assert score.credit(v("scaling", "scales", False, 0.6, 0.8, at_least=True)) == pytest.approx(0.75)
    assert score.credit(v("x", "client error ratio", False, 0.5, 0.01, inconclusive="pipeline down")) is None


def test_weights_decide_and_absent_categories_share_theirs() -> None:
    verdicts = [v("kill", "data audit", False), v("kill", "client error ratio", True, 0.0, 0.01)]
    default = score.compute(verdicts)  # data 25, client 25: only these two present
    assert default.value == 50.0
    weighted = score.compute(verdicts, score.Weights(data=75, client=25))
    assert weighted.value == 25.0
    rows = {c.name: c for c in weighted.categories}
    assert rows["data"].failed == 1 and rows["detection"].credit is None and rows["client"].points == 25.0


def test_category_of_each_verdict() -> None:
    assert score.category("baseline", "load thresholds") == score.CAPACITY
    assert score.category("exp", "alert BrokerDown time-to-detect") == score.DETECTION
    assert score.category("random-1", "F01-kill-payments: client p99 latency") == score.CLIENT
    assert score.category("random-1", "F01-kill-payments: rolled back") == score.RECOVERY
    assert score.category("random-1", "F02-stop-auth: alert ServiceDown attributed") == score.DETECTION
    assert score.category("exp", "during the fault") == score.HYPOTHESIS
    assert score.category("lab", "lab up and ready") is None


def test_inconclusive_verdicts_are_left_out() -> None:
    verdicts = [v("e", "client error ratio", True, 0.0, 0.01),
                v("e", "data audit", False, inconclusive="the audit API did not answer")]
    result = score.compute(verdicts)
    assert result.value == 100.0
    assert {c.name: c.inconclusive for c in result.categories}["data"] == 1


def test_a_lab_that_never_came_up_scores_zero() -> None:
    result = score.compute([v("lab", "lab up and ready", False)])
    assert result.value == 0.0 and "lab" in result.note


def test_a_plan_sets_the_weights_and_refuses_unknown_ones() -> None:
    plan = plans.parse({"name": "w", "experiments": [{"experiment": "poison-message"}],
                        "score": {"data": 50, "detection": 0}})
    assert plan.score.data == 50 and plan.score.detection == 0 and plan.score.client == 25
    with pytest.raises(plans.PlanError, match="score.speed"):
        plans.parse({"name": "w", "experiments": [{"experiment": "poison-message"}], "score": {"speed": 1}})
