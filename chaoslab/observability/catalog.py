"""Every PromQL expression chaoslab ships, for tests that run each one against a real Prometheus.

`all_expressions()` lists rule expressions (both profiles) and every dashboard query, variable and
annotation, each with the reason it may be empty in a healthy lab under load (None: it must return data).
`Expression.executable()` expands Grafana variables so the text can go to /api/v1/query as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from chaoslab.observability import alerts, rules
from chaoslab.observability.dashboards import dashboards
from chaoslab.observability.dashboards.spec import Dashboard
from chaoslab.observability.profiles import PROFILES
from chaoslab.observability.templating import expand

Kind = Literal["record", "alert", "panel", "variable", "annotation"]

# What a template variable expands to when a test does not choose: Grafana's "All" (see render.py).
ALL = ".*"


@dataclass(frozen=True)
class Expression:
    kind: Kind
    origin: str  # the file it ships in, relative to the repository root
    name: str  # rule name, or "<panel title> [<refId>]", or the variable / annotation name
    expr: str  # as written, possibly with Grafana variables
    expected_empty: str | None
    variables: tuple[str, ...] = ()  # the dashboard's template variables (expanded to ALL by default)

    def executable(self, values: Mapping[str, str] | None = None, **grafana: str) -> str:
        """The expression with every Grafana variable replaced (see templating.expand)."""
        chosen = {name: ALL for name in self.variables}
        chosen.update(values or {})
        return expand(self.expr, chosen, **grafana)


def rule_expressions(profile_names: Iterable[str] = tuple(PROFILES)) -> list[Expression]:
    found = []
    for name in profile_names:
        profile = PROFILES[name]
        origin = rules.rule_path(name)
        for rec in alerts.slo_recording_rules(profile):
            found.append(Expression("record", origin, f"{rec.record}{{slo={rec.labels['slo']}}}", rec.expr, None))
        for rule in alerts.alert_rules(profile):
            found.append(Expression("alert", origin, rule.alert, rule.expr,
                                    f"alert condition: empty unless {rule.alert} fires"))
    return found


def dashboard_expressions(boards: Iterable[Dashboard] | None = None) -> list[Expression]:
    found = []
    for board in dashboards() if boards is None else boards:
        origin = f"dashboards/{board.filename}"
        names = tuple(v.name for v in board.variables)
        for variable in board.variables:
            found.append(Expression("variable", origin, f"${variable.name}", variable.executable, None, names))
        for annotation in board.annotations:
            if annotation.expr is not None:
                found.append(Expression("annotation", origin, annotation.name, annotation.expr,
                                        annotation.empty_reason, names))
        for panel in board.panels():
            for index, target in enumerate(panel.targets):
                found.append(Expression("panel", origin, f"{panel.title} [{chr(ord('A') + index)}]",
                                        target.expr, target.empty_reason, names))
    return found


def all_expressions() -> list[Expression]:
    """Every rule and dashboard expression (rules of both profiles first, then dashboards)."""
    return rule_expressions() + dashboard_expressions()
