"""Every rule and dashboard expression parses and runs on the real Prometheus (empty TSDB: empty results
are fine here, errors are not). The live proof with data runs them against a lab (tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoslab.clients.prometheus import Prometheus
from chaoslab.observability import all_expressions
from chaoslab.observability.catalog import Expression

pytestmark = pytest.mark.quick


def test_the_catalogue_covers_rules_panels_variables_and_annotations() -> None:
    kinds = {e.kind for e in all_expressions()}
    assert kinds == {"record", "alert", "panel", "variable", "annotation"}
    origins = {e.origin for e in all_expressions()}
    assert {"alerts/rules/native.rules.yml", "alerts/rules/standard.rules.yml", "dashboards/overview.json",
            "dashboards/chaos.json"} <= origins


def test_the_catalogue_holds_exactly_the_rules_that_ship(repo_root: Path) -> None:
    """Each shipped rule file's rules are in the catalogue with the same expression, and nothing else is: the
    live proof runs the catalogue, so a rule it missed would never be run against data."""
    catalogued = {(e.origin, e.kind, e.name, e.expr) for e in all_expressions() if e.kind in ("record", "alert")}
    shipped = set()
    for origin in {e[0] for e in catalogued}:
        for group in yaml.safe_load((repo_root / origin).read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    shipped.add((origin, "alert", rule["alert"], rule["expr"]))
                elif rule.get("labels", {}).get("slo"):
                    shipped.add((origin, "record", f"{rule['record']}{{slo={rule['labels']['slo']}}}", rule["expr"]))
    assert len(shipped) > 20 and len({o for o, *_ in shipped}) == 2
    assert catalogued == shipped


def test_every_expression_runs_on_prometheus(prometheus: Prometheus) -> None:
    failures = []
    for expr in all_expressions():
        for variant in _variants(expr):
            answer = prometheus.query_answer(variant)
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
    assert prometheus.query_answer("sum(rate(up[5m])")["status"] == "error"
    assert prometheus.query_answer("up{job=~\"$service\"}")["status"] == "success"  # a literal $ is a valid regex
