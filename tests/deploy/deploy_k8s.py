"""Rendered Kubernetes manifests (kubectl kustomize) and ways to walk them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml
from deploy_support import REPO, run, tool

K8S = REPO / "k8s"
# The kustomizations a user applies: one that carries the lab itself, then any add-ons on top of it, in any order
# (docs/deploy.md). An add-on must work on either lab and change nothing the lab's kustomization created.
LABS = ("base", "overlays/observability")
ADD_ONS = ("overlays/load", "overlays/chaos")
KUSTOMIZATIONS = LABS + ADD_ONS
# What the cluster holds after applying these kustomizations in order: the layers the checks look at.
APPLIED: dict[str, tuple[str, ...]] = {
    "base": ("base",),
    "overlays/observability": ("overlays/observability",),
    "overlays/load": ("base", "overlays/load"),
    "overlays/chaos": ("base", "overlays/chaos"),
    "observability+load+chaos": ("overlays/observability", "overlays/load", "overlays/chaos"),
}
LAYERS = tuple(APPLIED)
NAMESPACE = "chaoslab"
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@cache
def kustomize(directory: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize k8s/<directory>`: the objects one `kubectl apply -k` sends."""
    out = run([tool("kubectl"), "kustomize", str(K8S / directory)]).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    """What `kubectl apply` matches an object by (kind, namespace, name; the API group is implied here)."""
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


@cache
def render(layer: str) -> tuple[dict[str, Any], ...]:
    """The objects in the cluster after applying the layer's kustomizations in order (a later one replaces)."""
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    for directory in APPLIED[layer]:
        for doc in kustomize(directory):
            objects[key(doc)] = doc
    return tuple(objects.values())


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
