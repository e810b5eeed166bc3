"""Dashboards and Grafana provisioning: unique uids, only provisioned datasources, exemplars on latency,
variables that exist, links between datasources that resolve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaoslab.observability.dashboards import dashboards
from chaoslab.observability.dashboards.spec import GRAFANA_BUILTIN_UID
from chaoslab.observability.templating import expand, variables_in

pytestmark = pytest.mark.quick

DATASOURCES = Path("dashboards/provisioning/datasources/datasources.yml")
PROVIDERS = Path("dashboards/provisioning/dashboards/dashboards.yml")
EXPECTED = {"overview", "service", "payments", "messaging", "loadtest", "chaos"}


@pytest.fixture()
def boards(generated_root: Path) -> dict[str, dict[str, Any]]:
    return models(generated_root)


def models(root: Path) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((root / "dashboards").glob("*.json"))}


def provisioned(root: Path) -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in yaml.safe_load((root / DATASOURCES).read_text())["datasources"]}


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_refs(value)


def targets(model: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_every_dashboard_is_there(boards: dict[str, dict[str, Any]]) -> None:
    assert set(boards) == EXPECTED


def test_uids_are_unique(boards: dict[str, dict[str, Any]]) -> None:
    specs = [board.uid for board in dashboards()]  # file names derive from uids: check before they collide
    assert len(specs) == len(set(specs)), specs
    uids = [m["uid"] for m in boards.values()]
    assert len(uids) == len(set(uids)), uids
    titles = [m["title"] for m in boards.values()]
    assert len(titles) == len(set(titles)), titles


def test_panel_ids_are_unique_within_a_dashboard(boards: dict[str, dict[str, Any]]) -> None:
    for name, model in boards.items():
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: {ids}"


def test_only_provisioned_datasources_are_used(repo_root: Path, boards: dict[str, dict[str, Any]]) -> None:
    known = set(provisioned(repo_root)) | {GRAFANA_BUILTIN_UID}
    for name, model in boards.items():
        used = {ref.get("uid") for ref in datasource_refs(model)}
        assert used <= known, f"{name} uses unprovisioned datasources {sorted(used - known)}"


def test_datasource_links_resolve(repo_root: Path) -> None:
    sources = provisioned(repo_root)
    assert {"prometheus", "loki", "jaeger"} <= set(sources)
    prom = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert [(d["name"], d["datasourceUid"]) for d in prom] == [("trace_id", "jaeger")]
    loki = sources["loki"]["jsonData"]["derivedFields"]
    assert all(field["datasourceUid"] in sources for field in loki)
    assert any("trace_id" in field["matcherRegex"] for field in loki)
    assert sources["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"


def test_derived_field_extracts_the_trace_id_from_a_json_log_line(repo_root: Path) -> None:
    import re

    field = provisioned(repo_root)["loki"]["jsonData"]["derivedFields"][0]
    line = ('{"time": "2026-01-01T00:00:00Z", "level": "info", "service": "orders", "replica": "orders-1", '
            '"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "message": "request"}')
    match = re.search(field["matcherRegex"], line)
    assert match and match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert field["url"] == "$${__value.raw}"  # `$$`: a literal `$` in a provisioning file


def test_dashboard_provider_reads_the_mounted_dir(repo_root: Path) -> None:
    providers = yaml.safe_load((repo_root / PROVIDERS).read_text())["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", "/var/lib/grafana/dashboards")]


def test_latency_panels_show_exemplars(boards: dict[str, dict[str, Any]]) -> None:
    """Every quantile of a request histogram with exemplars (server and client) links to traces."""
    checked = 0
    for name, model in boards.items():
        for panel, target in targets(model):
            expr = target["expr"]
            traced = any(f"{m}_bucket" in expr for m in ("http_server_request_duration_seconds",
                                                          "grpc_server_request_duration_seconds",
                                                          "client_request_duration_seconds"))
            if "histogram_quantile" in expr and traced:
                assert target.get("exemplar") is True, f"{name} / {panel['title']}: exemplars off"
                checked += 1
    assert checked >= 3, f"only {checked} latency quantile panels found: the filter no longer matches them"


def test_panels_use_only_their_dashboards_variables(boards: dict[str, dict[str, Any]]) -> None:
    for name, model in boards.items():
        declared = {v["name"] for v in model.get("templating", {}).get("list", [])}
        for panel, target in targets(model):
            used = {v for v in variables_in(target["expr"]) if not v.startswith("__")}
            assert used <= declared, f"{name} / {panel['title']}: undeclared {sorted(used - declared)}"


def test_service_dashboard_is_templated_by_service_and_replica(boards: dict[str, dict[str, Any]]) -> None:
    model = boards["service"]
    assert [v["name"] for v in model["templating"]["list"]] == ["service", "replica"]
    for panel, target in targets(model):
        assert "$service" in target["expr"], f"{panel['title']} ignores $service"


def test_chaos_dashboard_has_annotations(boards: dict[str, dict[str, Any]]) -> None:
    names = {a["name"] for a in boards["chaos"]["annotations"]["list"]}
    assert {"Chaos experiments", "Faults", "Firing alerts"} <= names


def test_overview_shows_firing_alerts_and_budgets(boards: dict[str, dict[str, Any]]) -> None:
    exprs = [t["expr"] for _, t in targets(boards["overview"])]
    assert any("ALERTS" in e for e in exprs)
    assert any("$__range" in e for e in exprs)


def test_loadtest_uses_the_locust_exporter_names(boards: dict[str, dict[str, Any]]) -> None:
    exprs = " ".join(t["expr"] for _, t in targets(boards["loadtest"]))
    for metric in ("locust_requests_per_second", "locust_failures_per_second", "locust_response_time_seconds",
                   "locust_users", "locust_requests_total", "locust_failures_total"):
        assert metric in exprs


def test_specs_match_the_generated_json(boards: dict[str, dict[str, Any]]) -> None:
    """The specs the expression catalogue reads are the JSON that generate writes."""
    for board in dashboards():
        model = boards[board.filename.removesuffix(".json")]
        assert [t["expr"] for _, t in targets(model)] == [t.expr for p in board.panels() for t in p.targets]


def test_expand_replaces_grafana_and_template_variables() -> None:
    expr = 'sum(rate(x{service=~"$service", replica=~"${replica:regex}"}[$__rate_interval])) [[service]] $__range'
    out = expand(expr, {"service": "orders", "replica": ".*"}, __rate_interval="30s", __range="1h")
    assert out == 'sum(rate(x{service=~"orders", replica=~".*"}[30s])) orders 1h'


def test_expand_refuses_unknown_variables() -> None:
    with pytest.raises(KeyError):
        expand('up{service="$nope"}')
