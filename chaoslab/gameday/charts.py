"""The report's charts: the key panels of the lab's dashboards, drawn from Prometheus range queries over the run,
so a person sees what Grafana would have shown even where no Grafana runs. The panels are looked up by
dashboard and title (chaoslab/observability), never copied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaoslab.clients.prometheus import Prometheus, PrometheusError
from chaoslab.gameday import panels, svg

POINTS_PER_CHART = 300
MIN_STEP_S = 2.0  # the lab's scrape interval: a finer step draws the same sample twice


@dataclass(frozen=True)
class ChartSpec:
    section: str
    dashboard: str  # uid
    panel: str  # title


# RED per service, SLO burn, payments capacity, queue depth, and what the clients saw.
KEY_PANELS: tuple[ChartSpec, ...] = (
    ChartSpec("RED per service", "chaoslab-overview", "Requests per second"),
    ChartSpec("RED per service", "chaoslab-overview", "Server error ratio"),
    ChartSpec("RED per service", "chaoslab-overview", "p99 latency"),
    ChartSpec("SLO burn", "chaoslab-overview", "Availability burn rate"),
    ChartSpec("SLO burn", "chaoslab-overview", "Latency burn rate"),
    ChartSpec("Payments capacity", "chaoslab-payments", "In flight vs limit"),
    ChartSpec("Queue depth", "chaoslab-messaging", "Queue depth"),
    ChartSpec("Clients (Locust)", "chaoslab-loadtest", "Requests and failures per second"),
)


@dataclass
class Chart:
    section: str
    title: str
    dashboard: str
    unit: str
    exprs: list[str]
    lines: list[svg.Line] = field(default_factory=list)
    svg: str = ""
    error: str = ""

    @property
    def points(self) -> int:
        return sum(len(line.points) for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        stamps = [t for line in self.lines for t, _ in line.points]
        return {"section": self.section, "title": self.title, "dashboard": self.dashboard, "unit": self.unit,
                "exprs": self.exprs, "points": self.points, "first": min(stamps, default=None),
                "last": max(stamps, default=None), "error": self.error,
                "series": [{"name": line.name, "color": line.color, "points": len(line.points)}
                           for line in self.lines]}


def step_for(start: float, end: float) -> float:
    return max(MIN_STEP_S, round((end - start) / POINTS_PER_CHART))


def rate_interval(step: float) -> str:
    """Grafana's $__rate_interval in spirit: at least four scrapes, and more than one step."""
    return f"{int(max(10, 2 * step))}s"


def build(spec: ChartSpec, prometheus: str, start: float, end: float, windows: list[svg.Window]) -> Chart:
    board, panel = panels.panel(spec.dashboard, spec.panel)
    step = step_for(start, end)
    queries = panels.queries(spec.dashboard, spec.panel, rate_interval(step), f"{max(1, int(end - start))}s")
    chart = Chart(spec.section, panel.title, f"dashboards/{board.filename}", panel.unit, [q.expr for q in queries])
    try:
        for query in queries:
            for series in Prometheus(prometheus, timeout_s=15.0).query_range(query.expr, start, end, step):
                chart.lines.append(svg.Line(panels.legend(query.legend, series.labels), series.points))
    except PrometheusError as exc:
        chart.error = str(exc)
    chart.lines.sort(key=lambda line: line.name)
    for i, line in enumerate(chart.lines):
        line.color = svg.PALETTE[i % len(svg.PALETTE)]
    chart.svg = svg.chart(chart.lines, start, end, windows, panel.unit, y_min=0.0 if panel.min is None else panel.min,
                          step_s=step, title=panel.title)
    return chart


def build_all(prometheus: str, start: float, end: float, windows: list[svg.Window]) -> list[Chart]:
    return [build(spec, prometheus, start, end, windows) for spec in KEY_PANELS]
