"""The faults below the application for Kubernetes (k8s/overlays/chaos-mesh): every resource validated offline
against Chaos Mesh v2.8.3's own CRD schemas (../shared/schemas/chaos-mesh, copied from chaos-mesh/chaos-mesh's
config/crd/bases), the way the API server's structural validation would; the overlay holds each kind the issue
names; every selector picks pods the base runs. No cluster and no controller run: whether Chaos Mesh injects them
as intended is not checked here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_k8s import kustomize
from deploy_support import REPO, crd_problems

pytestmark = pytest.mark.quick

SCHEMAS = REPO.parent / "shared" / "schemas" / "chaos-mesh"
OVERLAY = "overlays/chaos-mesh"


def crd_schemas() -> dict[str, dict[str, Any]]:
    """kind -> the openAPIV3Schema of its served version."""
    if not SCHEMAS.is_dir():
        pytest.fail(f"Chaos Mesh's CRD schemas are missing at {SCHEMAS} (shared/schemas/README.md)")
    out = {}
    for path in sorted(SCHEMAS.glob("chaos-mesh.org_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v.get("served"))
        out[crd["spec"]["names"]["kind"]] = {"schema": version["schema"]["openAPIV3Schema"],
                                             "apiVersion": f"{crd['spec']['group']}/{version['name']}"}
    return out


def problems(doc: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> list[str]:
    return crd_problems(doc, schemas, "Chaos Mesh")


@pytest.fixture(scope="module")
def chaos_objects() -> tuple[dict[str, Any], ...]:
    return kustomize(OVERLAY)


def test_every_chaos_mesh_resource_is_valid_against_the_crd_schemas(chaos_objects: tuple[dict[str, Any], ...]) -> None:
    schemas = crd_schemas()
    assert chaos_objects
    found = [p for doc in chaos_objects for p in problems(doc, schemas)]
    assert not found, "\n".join(found)


def test_the_validation_can_fail() -> None:
    """The same check refuses what Chaos Mesh's API server would: an unknown action, a loss that is no string,
    a StressChaos without stressors' required fields."""
    schemas = crd_schemas()
    broken = [
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos", "metadata": {"name": "x"},
         "spec": {"action": "blackhole", "mode": "all", "selector": {}}},
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos", "metadata": {"name": "y"},
         "spec": {"action": "loss", "mode": "all", "selector": {}, "loss": {"loss": 20}}},
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "TimeChaos", "metadata": {"name": "z"},
         "spec": {"mode": "all", "selector": {}}},
    ]
    for doc in broken:
        assert problems(doc, schemas), doc


def test_the_overlay_holds_every_kind_of_fault_below_the_application(
        chaos_objects: tuple[dict[str, Any], ...]) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in chaos_objects:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert set(by_kind) == {"NetworkChaos", "StressChaos", "TimeChaos", "IOChaos"}
    actions = {d["spec"]["action"] for d in by_kind["NetworkChaos"]}
    assert actions >= {"partition", "loss", "delay", "bandwidth"}
    stress = {n for d in by_kind["StressChaos"] for n in d["spec"]["stressors"]}
    assert stress == {"memory", "cpu"}
    assert [d["spec"]["timeOffset"] for d in by_kind["TimeChaos"]] == ["10m"]
    assert by_kind["IOChaos"][0]["spec"]["errno"] == 28  # ENOSPC: a full disk
    for doc in chaos_objects:
        assert doc["metadata"]["namespace"] == "chaoslab" and doc["spec"].get("duration"), doc["metadata"]["name"]
    native = {p.stem for p in (REPO / "chaos").glob("*.json")}
    named_after = {d["metadata"]["name"] for d in chaos_objects} & native
    assert named_after >= {"payments-blackhole", "gateway-orders-loss", "broker-partition", "notifications-bandwidth",
                           "notifications-oom", "orders-disk-full", "gateway-clock-skew"}


def _selected_names(selector: dict[str, Any]) -> set[str]:
    names = set()
    if "app.kubernetes.io/name" in selector.get("labelSelectors", {}):
        names.add(selector["labelSelectors"]["app.kubernetes.io/name"])
    for expression in selector.get("expressionSelectors", []):
        if expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In":
            names |= set(expression["values"])
    return names


def test_every_selector_picks_pods_the_base_runs(chaos_objects: tuple[dict[str, Any], ...]) -> None:
    pods = set()
    for doc in kustomize("base"):
        template = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        if "app.kubernetes.io/name" in template:
            pods.add(template["app.kubernetes.io/name"])
    checked = 0
    for doc in chaos_objects:
        for selector in (doc["spec"]["selector"], doc["spec"].get("target", {}).get("selector")):
            if selector is None:
                continue
            names = _selected_names(selector)
            assert names and names <= pods, (doc["metadata"]["name"], names, pods)
            assert selector["namespaces"] == ["chaoslab"]
            checked += 1
    assert checked >= len(chaos_objects)


def test_the_overlay_file_list_is_every_file(chaos_objects: tuple[dict[str, Any], ...]) -> None:
    folder = REPO / "k8s" / OVERLAY
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    assert len(chaos_objects) == len(listed)
    assert Path(folder / "kustomization.yaml").read_text().count("chaos/") >= 1  # it says how to run one
