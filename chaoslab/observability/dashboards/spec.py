"""A small, typed description of a dashboard, rendered to Grafana JSON with grafana-foundation-sdk (render.py).

Dashboards are written against these dataclasses rather than the SDK directly so that the expression
catalogue (catalog.py) can read every query, with why it may legitimately be empty, without parsing JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Datasource uids provisioned in dashboards/provisioning/datasources/datasources.yml.
PROMETHEUS_UID = "prometheus"
LOKI_UID = "loki"
JAEGER_UID = "jaeger"
# Grafana's built-in annotation store (what the chaos runner POSTs to /api/annotations).
GRAFANA_BUILTIN_UID = "-- Grafana --"

# Reasons a query may return nothing in a healthy lab under load (None: it must return data).
NO_FAULT = "no fault is injected in a healthy lab"
NO_ALERT = "no alert fires in a healthy lab"
NO_LOADTEST = "the Locust exporter only runs during a load test"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # one value per series (stat, table) instead of a range
    exemplars: bool = False  # show exemplars (trace ids) on latency panels
    table: bool = False  # Grafana's "table" format: one row per series, labels as columns
    empty_reason: str | None = None


@dataclass(frozen=True)
class Threshold:
    value: float | None  # None: the base step
    color: str


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    kind: Literal["timeseries", "stat", "table"] = "timeseries"
    unit: str = ""
    description: str = ""
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    thresholds: tuple[Threshold, ...] = ()
    stack: bool = False
    show_thresholds: bool = False  # draw the thresholds as lines on a time series


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A Prometheus query variable: `label_values(<metric selector>, <label>)`, multi-value with All = .*"""

    name: str
    label: str
    selector: str  # e.g. up{job=~"..."}
    target_label: str

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.target_label})"

    @property
    def executable(self) -> str:
        """A PromQL equivalent of the variable query (label_values is Grafana-only)."""
        return f"count by ({self.target_label}) ({self.selector})"


@dataclass(frozen=True)
class Annotation:
    name: str
    color: str
    expr: str | None = None  # a Prometheus annotation query ...
    tags: tuple[str, ...] = ()  # ... or Grafana's own annotations with these tags
    title: str = ""  # Prometheus annotations: titleFormat
    text: str = ""  # Prometheus annotations: textFormat
    empty_reason: str | None = None


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    tags: tuple[str, ...] = ("chaoslab",)
    refresh: str = "10s"
    time_from: str = "now-30m"
    links_to_other_dashboards: bool = True

    @property
    def filename(self) -> str:
        return f"{self.uid.removeprefix('chaoslab-')}.json"

    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]


# Thresholds shared by several dashboards.
RATIO_GOOD_HIGH = (Threshold(None, "red"), Threshold(0.99, "yellow"), Threshold(0.999, "green"))
BUDGET = (Threshold(None, "red"), Threshold(0, "orange"), Threshold(0.25, "yellow"), Threshold(0.5, "green"))
