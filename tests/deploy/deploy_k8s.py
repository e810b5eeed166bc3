"""Rendered Kubernetes manifests (kubectl kustomize) and ways to walk them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml
from deploy_support import REPO, run, tool

K8S = REPO / "k8s"
LAYERS = ("base", "overlays/observability", "overlays/load", "overlays/chaos")
NAMESPACE = "chaoslab"
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@cache
def render(layer: str) -> tuple[dict[str, Any], ...]:
    out = run([tool("kubectl"), "kustomize", str(K8S / layer)]).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(layer: str, *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in render(layer) if doc["kind"] in kinds]


def named(layer: str, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(layer, kind) if d["metadata"]["name"] == name]
    return doc


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(layer: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container, init containers included."""
    for workload in of_kind(layer, *WORKLOADS):
        spec = pod_spec(workload)
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield workload, container


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against a label set."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
