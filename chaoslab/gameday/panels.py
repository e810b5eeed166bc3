"""Dashboard panels as the gameday reads them: the queries come from chaoslab/observability (the dashboards'
own definitions, the single source of truth), with Grafana's variables expanded for Prometheus."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from chaoslab.observability.dashboards import dashboards
from chaoslab.observability.dashboards.spec import Dashboard, Panel
from chaoslab.observability.templating import expand

ALL = ".*"  # a template variable's "All"


@dataclass(frozen=True)
class PanelQuery:
    legend: str  # Grafana's legend format, e.g. "{{service}} (gRPC)"
    expr: str  # ready for Prometheus


@cache
def _boards() -> dict[str, Dashboard]:
    return {board.uid: board for board in dashboards()}


def panel(uid: str, title: str) -> tuple[Dashboard, Panel]:
    board = _boards().get(uid)
    if board is None:
        raise KeyError(f"no dashboard {uid!r}")
    for item in board.panels():
        if item.title == title:
            return board, item
    raise KeyError(f"no panel {title!r} on {uid}")


def queries(uid: str, title: str, rate_interval: str, range_: str = "5m") -> list[PanelQuery]:
    board, item = panel(uid, title)
    values = {v.name: ALL for v in board.variables}
    return [PanelQuery(t.legend, expand(t.expr, values, __rate_interval=rate_interval, __range=range_))
            for t in item.targets]


_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legend format filled from a series' labels (an unknown label becomes empty, as in Grafana)."""
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
