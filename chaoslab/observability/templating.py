"""Expand Grafana's query variables so a dashboard expression runs against Prometheus as it is.

Grafana substitutes `$__rate_interval`, `$__range`, `$__interval` and template variables (`$service`,
`${service}`, `${service:regex}`, `[[service]]`) before it sends a query; Prometheus knows none of them.
Tests and the live proof expand them to concrete values first, then run the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

# Grafana's own variables, with values that make sense against a lab scraped every 2 s:
# $__rate_interval is at least 4 scrape intervals in Grafana, so a minute is always valid.
GRAFANA_DEFAULTS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
    "__interval_ms": "15000",
}


def variables_in(expr: str) -> set[str]:
    """Names of every variable an expression references."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def expand(expr: str, values: Mapping[str, str] | None = None, **grafana: str) -> str:
    """`expr` with every variable replaced.

    `values` gives template variables (a multi-value or All selection is a regex such as `.*`);
    keyword arguments override Grafana's built-ins, e.g. expand(e, {"service": "orders"}, __range="1h").
    An unknown variable raises KeyError: a panel must not reference a variable its dashboard lacks.
    """
    table = {**GRAFANA_DEFAULTS, **grafana, **(values or {})}

    def substitute(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in table:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        return table[name]

    return _VARIABLE.sub(substitute, expr)
