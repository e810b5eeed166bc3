"""Policies on the rendered manifests: probes, resources and a restrictive securityContext on every container,
an HPA and a PDB for every Deployment, least-privilege RBAC, and service environments the services read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from deploy_envnames import read_by
from deploy_k8s import APPLIED, K8S, LAYERS, containers, named, of_kind, pod_labels, pod_spec, render, selector_matches
from deploy_support import SERVICES, run, tool

from services.kit import app as kit_app
from services.kit import consumer as kit_consumer

pytestmark = pytest.mark.quick

# Endpoint updates reach every node's kube-proxy within a few seconds; after the delay the kit's graceful shutdown
# is bounded by its own timeouts: the public port's drain, then the consumer's (the outbox loop and the pools close
# at once).
SERVING_AFTER_SIGTERM_MIN_S = 5
KIT_SHUTDOWN_S = kit_app.DRAIN_TIMEOUT_S + kit_consumer.DRAIN_TIMEOUT_S


def _effective(workload: dict, container: dict, key: str) -> object:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod_spec(workload).get("securityContext") or {}).get(key)


@pytest.mark.parametrize("layer", LAYERS)
def test_every_container_is_locked_down(layer: str) -> None:
    for workload, container in containers(layer):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
        ctx = container.get("securityContext") or {}
        assert _effective(workload, container, "runAsNonRoot") is True, where
        assert ctx.get("readOnlyRootFilesystem") is True, where
        assert ctx.get("allowPrivilegeEscalation") is False, where
        assert "ALL" in (ctx.get("capabilities") or {}).get("drop", []), where
        assert not (ctx.get("capabilities") or {}).get("add"), where
        assert (_effective(workload, container, "seccompProfile") or {}).get("type") == "RuntimeDefault", where
        assert not ctx.get("privileged"), where
        # A read-only root needs somewhere to write: /tmp is an emptyDir.
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp is not an emptyDir"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_container_has_requests_and_limits(layer: str) -> None:
    for workload, container in containers(layer):
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{workload['metadata']['name']}: {kind}"


@pytest.mark.parametrize("layer", LAYERS)
def test_long_running_containers_have_readiness_and_liveness_probes(layer: str) -> None:
    for workload, container in containers(layer):
        if workload["kind"] == "Job":
            continue  # a run-to-completion pod is not probed for readiness
        for probe in ("readinessProbe", "livenessProbe"):
            assert container.get(probe), f"{workload['metadata']['name']}: no {probe}"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_deployment_has_an_hpa_and_a_pdb(layer: str) -> None:
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(layer, "HorizontalPodAutoscaler")}
    pdbs = of_kind(layer, "PodDisruptionBudget")
    deployments = of_kind(layer, "Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(SERVICES)
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        hpa = hpas.get(name)
        assert hpa and hpa["apiVersion"] == "autoscaling/v2", f"{name}: no autoscaling/v2 HPA"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2, f"{name}: one pod kill would take it out"
        metrics = hpa["spec"]["metrics"]
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics), name
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        covering = [p for p in pdbs if selector_matches(p["spec"]["selector"], pod_labels(deployment))]
        assert len(covering) == 1, f"{name}: {len(covering)} PDBs"
        assert covering[0]["spec"].get("maxUnavailable") == 1 or covering[0]["spec"].get("minAvailable") == 1


@pytest.mark.parametrize("layer", LAYERS)
def test_hpas_scale_on_metrics_the_documented_cluster_serves(layer: str) -> None:
    """docs/deploy.md requires metrics-server (Resource metrics) and nothing else. An HPA with a metric nobody
    serves never scales down: when one metric cannot be fetched and the others suggest fewer replicas, the HPA
    skips scaling (Kubernetes' HPA documentation, "Algorithm details"; kubernetes/kubernetes#99514), so payments'
    in-flight Pods metric, without prometheus-adapter, held payments at its peak for good. It is opt-in:
    k8s/components/payments-inflight-hpa."""
    hpas = of_kind(layer, "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        for metric in hpa["spec"]["metrics"]:
            assert metric["type"] == "Resource", f"{hpa['metadata']['name']}: {metric['type']} metric"


def test_chaos_runner_rbac_is_least_privilege() -> None:
    role = named("base", "Role", "chaos-runner")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {
        ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "delete"),
        ("apps", "deployments", "get"), ("apps", "deployments", "list"), ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
        ("apps", "deployments/scale", "update"),
        ("networking.k8s.io", "networkpolicies", "create"), ("networking.k8s.io", "networkpolicies", "delete"),
    }
    (binding,) = of_kind("base", "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "chaos-runner"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "chaos-runner", "namespace": "chaoslab"}]
    # Only the chaos Job runs as it; every other pod runs without an API token.
    for layer in LAYERS:
        for workload in of_kind(layer, "Deployment", "StatefulSet", "Job"):
            spec = pod_spec(workload)
            if spec.get("serviceAccountName") == "chaos-runner":
                assert "overlays/chaos" in APPLIED[layer] and workload["metadata"]["name"] == "chaos-experiments"
            else:
                assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]


@pytest.mark.parametrize("layer", LAYERS)
def test_service_environment_names_are_read_by_the_service(layer: str) -> None:
    """As for compose; a variable that only feeds a $(NAME) expansion of another one (a password from a
    Secret spliced into DATABASE_URL) is allowed, since Kubernetes consumes it."""
    for workload, container in containers(layer):
        service = workload["metadata"]["name"]
        if workload["kind"] != "Deployment":
            continue
        env = {e["name"]: e for e in container["env"]}
        spliced = {n for e in env.values() for n in re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", e.get("value", ""))}
        unknown = set(env) - read_by(service) - spliced
        assert not unknown, f"{layer} {service}: {sorted(unknown)} read by nobody"
        assert env["HTTP_HOST"]["value"] == "0.0.0.0" and env["ADMIN_PORT"]["value"] == "9090", service
        assert env["AUTH_URL"]["value"] == "http://auth:8080", service
        assert container["command"] == ["python", "-m", f"services.{service}"]
        for e in env.values():
            if "value" in e:
                assert not re.search(r"://[^:/@]+:[^$@][^@]*@", e["value"]), f"{service}: secret in {e['name']}"


def test_every_secret_reference_exists() -> None:
    for layer in LAYERS:
        secrets = {s["metadata"]["name"]: s for s in of_kind(layer, "Secret")}
        for workload, container in containers(layer):
            for e in container.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{workload['metadata']['name']}: {ref['name']}"
                    assert ref["key"] in secrets[ref["name"]]["data"], f"{workload['metadata']['name']}: {ref['key']}"
    assert render("base")  # rendered at least once


def test_the_payments_inflight_component_adds_the_adapter_metric(tmp_path: Path) -> None:
    """Where prometheus-adapter serves payments_inflight, the opt-in component adds it to payments' HPA only."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(K8S / "overlays" / "observability", tmp_path)],
        "components": [os.path.relpath(K8S / "components" / "payments-inflight-hpa", tmp_path)],
    }), encoding="utf-8")
    rendered = [d for d in yaml.safe_load_all(run([tool("kubectl"), "kustomize", str(tmp_path)]).stdout) if d]
    hpas = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"}
    assert {m["type"] for m in hpas["payments"]["spec"]["metrics"]} == {"Resource", "Pods"}
    (pods,) = [m for m in hpas["payments"]["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods["pods"]["metric"]["name"] == "payments_inflight"
    for name, hpa in hpas.items():
        if name != "payments":
            assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource"}, name


@pytest.mark.parametrize("layer", LAYERS)
def test_a_stopping_replica_leaves_the_service_before_it_stops_listening(layer: str) -> None:
    """A terminating pod is taken out of its Service's endpoints while the kubelet already sends SIGTERM: without a
    delay before the kit closes its listener, a rolling update drops the requests that kube-proxy still sends to it.
    The delay is the kit's SHUTDOWN_DELAY_S (not ready, still serving) plus any preStop sleep before SIGTERM, and
    the grace period leaves the kit its own shutdown after it."""
    for deployment in of_kind(layer, "Deployment"):
        name = deployment["metadata"]["name"]
        container = pod_spec(deployment)["containers"][0]
        command = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
        before_sigterm = float(command[1]) if command and command[0] == "sleep" else 0.0
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        in_the_kit = float(env.get("SHUTDOWN_DELAY_S") or 0)
        serving = before_sigterm + in_the_kit
        assert serving >= SERVING_AFTER_SIGTERM_MIN_S, f"{name}: serves {serving:g} s after leaving its endpoints"
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= serving + KIT_SHUTDOWN_S, f"{name}: {grace}s grace for {serving:g}s + the kit's shutdown"
