"""Render a spec.Dashboard to Grafana dashboard JSON with grafana-foundation-sdk's builders."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from chaoslab.observability.dashboards import spec

PROMETHEUS = dash_m.DataSourceRef(type_val="prometheus", uid=spec.PROMETHEUS_UID)
GRAFANA = dash_m.DataSourceRef(type_val="grafana", uid=spec.GRAFANA_BUILTIN_UID)


def _target(target: spec.Target, ref_id: str) -> prom_b.Dataquery:
    query = prom_b.Dataquery().expr(target.expr).ref_id(ref_id).datasource(PROMETHEUS)
    if target.legend:
        query = query.legend_format(target.legend)
    query = query.instant() if target.instant else query.range()
    if target.table:
        query = query.format(prom_m.PromQueryFormat.TABLE)
    if target.exemplars:
        query = query.exemplar(True)
    return query


def _thresholds(steps: tuple[spec.Threshold, ...]) -> dash_b.ThresholdsConfig:
    return dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(
        [dash_m.Threshold(value=s.value, color=s.color) for s in steps]
    )


def _panel_builder(panel: spec.Panel) -> Any:
    if panel.kind == "stat":
        return (stat_b.Panel()
                .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
                .graph_mode(common_m.BigValueGraphMode.AREA))
    if panel.kind == "table":
        return table_b.Panel().show_header(True)
    builder = (ts_b.Panel()
               .legend(common_b.VizLegendOptions().show_legend(True)
                       .display_mode(common_m.LegendDisplayMode.LIST)
                       .placement(common_m.LegendPlacement.BOTTOM))
               .tooltip(common_b.VizTooltipOptions().mode(common_m.TooltipDisplayMode.MULTI)
                        .sort(common_m.SortOrder.DESCENDING))
               .fill_opacity(10)
               .line_width(1))
    if panel.stack:
        builder = builder.stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
    if panel.show_thresholds:
        builder = builder.thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common_m.GraphTresholdsStyleMode.DASHED))
    return builder


def _panel(panel: spec.Panel, panel_id: int) -> Any:
    builder = (_panel_builder(panel)
               .id(panel_id)
               .title(panel.title)
               .datasource(PROMETHEUS)
               .span(panel.width)
               .height(panel.height)
               .targets([_target(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)]))
    if panel.description:
        builder = builder.description(panel.description)
    if panel.unit:
        builder = builder.unit(panel.unit)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    if panel.thresholds:
        builder = builder.thresholds(_thresholds(panel.thresholds))
    return builder


def _variable(variable: spec.Variable) -> dash_b.QueryVariable:
    return (dash_b.QueryVariable(variable.name)
            .label(variable.label)
            .datasource(PROMETHEUS)
            .query(variable.query)
            .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            # `.*` rather than Grafana's default `(a|b|c)` for All: it also matches replicas that appear
            # after the dashboard loaded (a scale-up mid-experiment).
            .all_value(".*")
            .current(dash_m.VariableOption(selected=True, text="All", value="$__all")))


def _annotation(annotation: spec.Annotation) -> dash_b.AnnotationQuery:
    builder = dash_b.AnnotationQuery().name(annotation.name).enable(True).hide(False).icon_color(annotation.color)
    if annotation.expr is not None:
        return builder.datasource(PROMETHEUS).expr(annotation.expr)
    return builder.datasource(GRAFANA).target(
        dash_b.AnnotationTarget().type("tags").tags(list(annotation.tags)).match_any(True).limit(100))


def build(board: spec.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model (a dict ready for json.dump)."""
    builder = (dash_b.Dashboard(board.title)
               .uid(board.uid)
               .description(board.description)
               .tags(list(board.tags))
               .refresh(board.refresh)
               .time(board.time_from, "now")
               .timezone("browser")
               .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
               .editable())
    for variable in board.variables:
        builder = builder.with_variable(_variable(variable))
    for annotation in board.annotations:
        builder = builder.annotation(_annotation(annotation))
    if board.links_to_other_dashboards:
        builder = builder.link(dash_b.DashboardLink("chaoslab").type(dash_m.DashboardLinkType.DASHBOARDS)
                               .tags(["chaoslab"]).as_dropdown(True).include_vars(True).keep_time(True))
    next_id = 1
    for row in board.rows:
        builder = builder.with_row(dash_b.Row(row.title).id(next_id))
        next_id += 1
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel, next_id))
            next_id += 1
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    _patch_annotations(model, board)
    return model


def _patch_annotations(model: dict[str, Any], board: spec.Dashboard) -> None:
    """Add the Prometheus annotation fields the SDK's AnnotationQuery does not model (titleFormat, ...)."""
    listed = model.get("annotations", {}).get("list", [])
    for entry, annotation in zip(listed, board.annotations, strict=True):
        if annotation.expr is not None:
            entry["step"] = "10s"
            entry["useValueForTime"] = False
            if annotation.title:
                entry["titleFormat"] = annotation.title
            if annotation.text:
                entry["textFormat"] = annotation.text


def to_json(board: spec.Dashboard) -> str:
    """Stable JSON text: sorted keys, so regenerating an unchanged dashboard changes no byte."""
    return json.dumps(build(board), indent=2, sort_keys=True) + "\n"
