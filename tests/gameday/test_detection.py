"""The detection model's arithmetic (quick): the band a target-down rule promises from the catalogue's `for` and
the native pipeline's timings, and how a measurement is judged against it. The model against real runs is in
tests/gameday/test_verdict_failures.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaoslab.gameday import detection
from chaoslab.observability.profiles import parse_duration

pytestmark = pytest.mark.quick


def test_a_target_down_rule_promises_its_for_plus_the_pipeline() -> None:
    pipeline = detection.Pipeline.native()
    assert (pipeline.scrape_s, pipeline.evaluation_s, pipeline.group_wait_s) == (2.0, 2.0, 1.0)
    prediction = detection.predict("ServiceDown", {"service": "payments"}, pipeline)
    assert prediction is not None and prediction.model == "target-down"
    hold = parse_duration(detection.rule_of("ServiceDown", {"service": "payments"}).hold)  # type: ignore[union-attr]
    assert prediction.hold_s == hold
    assert prediction.earliest_s == pytest.approx(0 + hold + 1.0)
    assert prediction.latest_s == pytest.approx(4.0 + hold + 4.0 + 1.0 + 1.0)
    lo, hi = prediction.band
    assert hi == pytest.approx(prediction.latest_s + max(2.0, 0.25 * prediction.latest_s))
    assert prediction.judge((lo + hi) / 2)[0]
    early, why = prediction.judge(lo - 1)
    assert not early and "earlier than the rule allows" in why
    late, why = prediction.judge(hi + 1)
    assert not late and "later than the rule promises" in why


def test_rules_are_found_per_service_and_unknown_ones_are_not_predicted() -> None:
    rule = detection.rule_of("LatencyBurnRateFast", {"service": "orders"})
    assert rule is not None and rule.labels["service"] == "orders"
    assert detection.predict("NoSuchAlert", {}, detection.Pipeline.native()) is None
    # a burn-rate or onset model needs Prometheus' view of the fault: without it, no prediction
    assert detection.predict("LatencyBurnRateFast", {"service": "orders"}, detection.Pipeline.native()) is None


def test_the_coverage_matrix_names_blind_spots_and_dead_alerts() -> None:
    from chaoslab.gameday import coverage

    cells = coverage.plan_cells(["stop", "kill"], ["payments"], isolated=False)
    assert [(c.fault, c.target, c.must_detect) for c in cells] == [("stop", "payments", "ServiceDown"),
                                                                   ("kill", "payments", None)]
    stop, kill = cells
    stop.alerts, stop.detected = ["CircuitBreakerOpen (orders → payments)"], False  # ServiceDown did not fire
    kill.alerts, kill.degraded = [], True  # clients saw it, no alert did
    matrix = coverage.Coverage(cells, ["ServiceDown", "CircuitBreakerOpen", "BrokerDown"], None)
    assert [f"{c.fault} {c.target}" for c in matrix.blind_spots] == ["stop payments", "kill payments"]
    assert matrix.dead_alerts == ["ServiceDown", "BrokerDown"] and not matrix.passed
    page = coverage.render(matrix)
    assert page.count('data-blind="true"') == 2 and "CircuitBreakerOpen (orders → payments)" in page
    stop.detected, stop.alerts = True, ["ServiceDown (payments)"]
    kill.degraded = False
    assert coverage.Coverage(cells, ["ServiceDown"], None).passed
    with pytest.raises(ValueError, match="needs an isolated lab"):
        coverage.plan_cells(["loss"], None, isolated=False)
    with pytest.raises(ValueError, match="unknown service"):
        coverage.plan_cells(["stop"], ["paymnts"], isolated=False)


def test_what_must_be_detected_is_marked_in_the_catalogue(chaoslab_cli: Callable[..., Any], tmp_path: Path) -> None:
    """The catalogue's must_detect is what the matrix owes, and `coverage --plan` reads a plan's coverage block."""
    from chaoslab.chaos import template
    from chaoslab.gameday import coverage

    owed = {kind: fault.must_detect for kind, fault in template.FAULTS.items() if fault.must_detect}
    assert owed == {"stop": "ServiceDown", "errors": "AvailabilityBurnRateFast", "broker": "BrokerDown"}
    cells = coverage.plan_cells(["broker", "latency"], ["users"], isolated=False)
    assert [(c.fault, c.target, c.must_detect, c.detected) for c in cells] == [
        ("broker", "broker", "BrokerDown", False), ("latency", "users", None, None)]
    no_block = chaoslab_cli("coverage", "--plan", "quick", "--state-dir", tmp_path)
    assert no_block.returncode == 2 and "plan quick has no coverage block" in no_block.stderr, no_block.stderr
    own = tmp_path / "own.yaml"  # a plan with a coverage block gets past it, to the lab it needs
    own.write_text("name: own\nexperiments: [{experiment: kill-payments-replica}]\n"
                   "coverage: {faults: [stop], fault_s: 5}\n")
    no_lab = chaoslab_cli("coverage", "--plan", own, "--state-dir", tmp_path / "none")
    assert no_lab.returncode != 0 and "no lab in" in no_lab.stderr, no_lab.stderr
