"""The observability overlay's ServiceMonitors and PrometheusRule are picked up, as installed, by both common
Prometheus Operator stacks: each stack's own Prometheus object selects them, may discover the lab's endpoints in
its namespace (RBAC), and is let in by the lab's NetworkPolicies on the ports it scrapes.

The stacks' defaults, from their sources (no cluster here to install them on):
- kube-prometheus-stack (prometheus-community/helm-charts, charts/kube-prometheus-stack: templates/prometheus/
  prometheus.yaml and values.yaml): with `*SelectorNilUsesHelmValues: true`, the default, the Prometheus object
  selects ServiceMonitors and PrometheusRules labelled `release: <Helm release name>`, in every namespace
  (namespace selectors `{}`); its ServiceAccount is bound to a ClusterRole that lists services, endpoints and pods
  cluster-wide. docs/deploy.md installs it as release `kube-prometheus-stack` in namespace `monitoring`.
- kube-prometheus (prometheus-operator/kube-prometheus, manifests/prometheus-prometheus.yaml and
  prometheus-roleBindingSpecificNamespaces.yaml): Prometheus `k8s` in `monitoring` selects every ServiceMonitor and
  PrometheusRule (`{}` selectors), but its ServiceAccount `prometheus-k8s` may only list services, endpoints and
  pods in the namespaces default, kube-system and monitoring, through a Role and RoleBinding in each.
The operator labels the Prometheus pods it creates `app.kubernetes.io/name: prometheus` in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from deploy_k8s import NAMESPACE, of_kind, selector_matches
from deploy_netpol import CNIS, Entity, Port, allows

pytestmark = pytest.mark.quick
LAYER = "overlays/observability"


@dataclass(frozen=True)
class Stack:
    name: str
    namespace: str
    service_monitor_selector: dict[str, Any]
    rule_selector: dict[str, Any]
    service_account: str
    cluster_wide_discovery: bool  # a ClusterRole lets it list endpoints in every namespace


STACKS = (
    Stack("kube-prometheus-stack", "monitoring", {"matchLabels": {"release": "kube-prometheus-stack"}},
          {"matchLabels": {"release": "kube-prometheus-stack"}},
          "kube-prometheus-stack-prometheus", cluster_wide_discovery=True),
    Stack("kube-prometheus", "monitoring", {}, {}, "prometheus-k8s", cluster_wide_discovery=False),
)
# What the operator's service discovery of a ServiceMonitor reads (role: endpoints, or endpointslice).
DISCOVERY = {("", "services"), ("", "pods"), ("", "endpoints")}


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"].get("labels") or {}


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: s.name)
def test_the_stack_selects_the_monitors_and_the_rules(stack: Stack) -> None:
    monitors = of_kind(LAYER, "ServiceMonitor")
    rules = of_kind(LAYER, "PrometheusRule")
    assert monitors and rules
    for monitor in monitors:
        assert selector_matches(stack.service_monitor_selector, _labels(monitor)), \
            f"{stack.name} does not select ServiceMonitor {monitor['metadata']['name']}"
    for rule in rules:
        assert selector_matches(stack.rule_selector, _labels(rule)), \
            f"{stack.name} does not select PrometheusRule {rule['metadata']['name']}"


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: s.name)
def test_the_stack_may_discover_the_lab_endpoints(stack: Stack) -> None:
    if stack.cluster_wide_discovery:
        return
    granted = set()
    roles = {r["metadata"]["name"]: r for r in of_kind(LAYER, "Role")}
    for binding in of_kind(LAYER, "RoleBinding"):
        subjects = binding.get("subjects", [])
        if not any(s["kind"] == "ServiceAccount" and s["name"] == stack.service_account
                   and s.get("namespace") == stack.namespace for s in subjects):
            continue
        assert binding["roleRef"]["kind"] == "Role" and binding["metadata"]["namespace"] == NAMESPACE
        for rule in roles[binding["roleRef"]["name"]]["rules"]:
            if {"get", "list", "watch"} <= set(rule["verbs"]):
                granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted >= DISCOVERY, f"{stack.name}'s Prometheus may not list {sorted(DISCOVERY - granted)} in {NAMESPACE}"


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: s.name)
def test_the_lab_lets_the_stack_scrape(stack: Stack) -> None:
    prometheus = Entity(f"{stack.name}-prometheus", stack.namespace, {"app.kubernetes.io/name": "prometheus"})
    for monitor in of_kind(LAYER, "ServiceMonitor"):
        selected = [s for s in of_kind(LAYER, "Service")
                    if selector_matches(monitor["spec"]["selector"], _labels(s))]
        assert selected, f"{monitor['metadata']['name']} selects no Service"
        for service in selected:
            ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                port = Port(ports[endpoint["port"]])
                for cni in CNIS:
                    assert allows(LAYER, prometheus, service["metadata"]["name"], port, cni), \
                        f"{stack.name} cannot scrape {service['metadata']['name']}:{port} ({cni})"
