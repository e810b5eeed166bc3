"""Every rule and dashboard expression parses and runs on the real Prometheus (empty TSDB: empty results
are fine here, errors are not). The live proof with data runs them against a lab (tests/e2e)."""

from __future__ import annotations

import pytest

from chaoslab.observability import all_expressions
from chaoslab.observability.catalog import Expression

from .conftest import Prometheus

pytestmark = pytest.mark.quick


def test_the_catalogue_covers_rules_panels_variables_and_annotations() -> None:
    kinds = {e.kind for e in all_expressions()}
    assert kinds == {"record", "alert", "panel", "variable", "annotation"}
    origins = {e.origin for e in all_expressions()}
    assert {"alerts/rules/native.rules.yml", "alerts/rules/standard.rules.yml", "dashboards/overview.json",
            "dashboards/chaos.json"} <= origins


def test_alert_expressions_are_expected_empty_when_healthy() -> None:
    for expr in all_expressions():
        if expr.kind == "alert":
            assert expr.expected_empty, expr.name


def test_as_tuple_shape() -> None:
    name, text, reason = all_expressions()[0].as_tuple
    assert name.startswith("alerts/rules/") and text and reason is None


def test_every_expression_runs_on_prometheus(prometheus: Prometheus) -> None:
    failures = []
    for expr in all_expressions():
        for variant in _variants(expr):
            answer = prometheus.query(variant)
            if answer.get("status") != "success":
                failures.append(f"{expr.origin}: {expr.name}: {answer.get('error')}\n    {variant}")
    assert not failures, "\n".join(failures)


def _variants(expr: Expression) -> list[str]:
    """As Grafana would send it with All selected, and with one concrete value per variable."""
    variants = [expr.executable()]
    if expr.variables:
        variants.append(expr.executable({name: "orders" for name in expr.variables}, __range="1h"))
    return variants


def test_a_broken_expression_is_reported(prometheus: Prometheus) -> None:
    """The check above can fail: Prometheus answers a parse error with status error."""
    assert prometheus.query("sum(rate(up[5m])")["status"] == "error"
    assert prometheus.query("up{job=~\"$service\"}")["status"] == "success"  # a literal $ is a valid regex
