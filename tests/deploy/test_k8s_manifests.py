"""k8s/: the generated files are fresh, kustomize renders the base and every overlay, and what it renders
validates against the Kubernetes API schemas (kubernetes-validate, strict: unknown fields are errors).
The Prometheus Operator's CRDs have no schema in kubernetes-validate; they are checked against
tests/schemas/monitoring.coreos.com-v1-subset.json, written for the fields the overlay uses."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
from deploy_k8s import ADD_ONS, K8S, KUSTOMIZATIONS, LABS, LAYERS, NAMESPACE, key, kustomize, render
from deploy_support import REPO, run

pytestmark = pytest.mark.quick

# The oldest Kubernetes these manifests claim to support and the newest kubernetes-validate knows.
VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
CRD_SCHEMA = REPO / "tests" / "schemas" / "monitoring.coreos.com-v1-subset.json"


def test_generated_manifests_are_fresh() -> None:
    """k8s/generate.py --check: the services, NetworkPolicies, copied configs and the PrometheusRule match
    their sources (its table, alerts/rules/standard.rules.yml, compose/)."""
    run([str(REPO / ".venv" / "bin" / "python"), str(K8S / "generate.py"), "--check"])


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_objects_validate(directory: str, version: str) -> None:
    errors = []
    for doc in kustomize(directory):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # test_crd_objects_match_the_operator_schema
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema ({exc.message})")
    assert not errors, "\n".join(errors)


def test_crd_objects_match_the_operator_schema() -> None:
    schema = json.loads(CRD_SCHEMA.read_text(encoding="utf-8"))
    crds = [d for d in render("overlays/observability") if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in crds} == {"ServiceMonitor", "PrometheusRule"}
    for doc in crds:
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {[e.message for e in errors]}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_everything_lives_in_the_lab_namespace(directory: str) -> None:
    kinds = {d["kind"] for d in kustomize(directory)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "cluster-wide RBAC"
    for doc in kustomize(directory):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
            assert doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("layer", LAYERS)
def test_images_are_pinned(layer: str) -> None:
    for doc in render(layer):
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), f"{doc['metadata']['name']}: {image}"


@pytest.mark.parametrize("add_on", ADD_ONS)
@pytest.mark.parametrize("lab", LABS)
def test_an_add_on_changes_nothing_the_lab_created(lab: str, add_on: str) -> None:
    """docs/deploy.md applies the load and chaos add-ons after the lab (base or observability), in any order:
    an object both render would be overwritten by the later apply (before: load and chaos re-rendered the base, so
    applying them after observability stripped the OTLP endpoint and restarted every service)."""
    applied = {key(doc): doc for doc in kustomize(lab)}
    added = kustomize(add_on)
    assert added, f"{add_on} renders nothing"
    for doc in added:
        if key(doc) in applied:
            assert doc == applied[key(doc)], f"applying {add_on} after {lab} changes {'/'.join(key(doc))}"
