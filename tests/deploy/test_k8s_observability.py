"""The observability overlay: the PrometheusRule is alerts/rules/standard.rules.yml (same groups, and they
pass promtool), the ServiceMonitors select the Services and ports that exist, traces go out over OTLP/HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from deploy_k8s import named, of_kind, selector_matches
from deploy_netpol import CNIS, Entity, Port, allows
from deploy_support import REPO, SERVICES, load_yaml, run, tool

pytestmark = pytest.mark.quick
LAYER = "overlays/observability"


def test_prometheus_rule_is_the_standard_rules_file() -> None:
    (rule,) = of_kind(LAYER, "PrometheusRule")
    source = load_yaml(REPO / "alerts" / "rules" / "standard.rules.yml")
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["spec"]["groups"], "no rule groups"


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    """What the operator hands Prometheus is the groups list: promtool checks it as a rule file."""
    (rule,) = of_kind(LAYER, "PrometheusRule")
    rules_file = tmp_path / "chaoslab-standard.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False), encoding="utf-8")
    done = run([tool("promtool"), "check", "rules", str(rules_file)])
    assert "SUCCESS" in done.stdout + done.stderr


def test_service_monitors_select_existing_services_and_ports() -> None:
    services = of_kind(LAYER, "Service")
    monitors = {m["metadata"]["name"]: m for m in of_kind(LAYER, "ServiceMonitor")}
    scraped: set[str] = set()
    for monitor in monitors.values():
        spec = monitor["spec"]
        assert spec["namespaceSelector"]["matchNames"] == ["chaoslab"]
        selected = [s for s in services if selector_matches(spec["selector"], s["metadata"].get("labels", {}))]
        assert selected, f"{monitor['metadata']['name']} selects no Service"
        for service in selected:
            ports = {p["name"] for p in service["spec"]["ports"]}
            for endpoint in spec["endpoints"]:
                assert endpoint["port"] in ports, f"{service['metadata']['name']} has no port {endpoint['port']}"
            if spec.get("jobLabel"):
                assert spec["jobLabel"] in service["metadata"]["labels"], "job would fall back to the Service name"
            scraped.add(service["metadata"]["name"])
    assert scraped == {*SERVICES, "rabbitmq"}
    relabel = monitors["chaoslab-services"]["spec"]["endpoints"][0]["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "replica"} in relabel


def test_every_service_exports_traces_over_otlp_http() -> None:
    for service in SERVICES:
        env = {e["name"]: e.get("value") for e in named(LAYER, "Deployment", service)["spec"]["template"]["spec"]
               ["containers"][0]["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318"), service


# How the common installers label an OTLP collector's pods in the tracing namespace: the Jaeger Helm chart
# (app.kubernetes.io/name from the chart's name), the Jaeger Operator (pkg/deployment/collector.go: "<instance>-
# collector"), the OpenTelemetry Operator (internal/manifests/manifestutils/labels.go: "<name>-collector").
COLLECTORS = (
    Entity("jaeger-helm-chart", "observability", {"app.kubernetes.io/name": "jaeger",
                                                  "app.kubernetes.io/component": "all-in-one"}, (Port(4318),)),
    Entity("jaeger-operator", "observability", {"app.kubernetes.io/name": "simplest-collector",
                                                "app.kubernetes.io/component": "collector"}, (Port(4318),)),
    Entity("otel-operator", "observability", {"app.kubernetes.io/name": "otel-collector",
                                              "app.kubernetes.io/component": "opentelemetry-collector"},
           (Port(4318),)),
)


@pytest.mark.parametrize("collector", COLLECTORS, ids=lambda c: c.name)
def test_spans_reach_a_collector_whatever_its_installer_named_it(collector: Entity) -> None:
    for service in SERVICES:
        for cni in CNIS:
            assert allows(LAYER, service, collector, Port(4318), cni), f"{service} -> {collector.name} ({cni})"
