"""chaos/k8s: the Kubernetes experiments pass `chaos validate`, only do what the chaos runner's Role allows,
point at Services, ports and labels that exist in the rendered manifests, and undo exactly what they change."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from deploy_k8s import LAYERS, named, of_kind, pod_labels, selector_matches
from deploy_support import REPO

pytestmark = pytest.mark.quick

FOLDER = REPO / "chaos" / "k8s"
EXPERIMENTS = sorted(FOLDER.glob("*.json"))
VENV_BIN = REPO / ".venv" / "bin"

# What each chaostoolkit-kubernetes 0.39 function calls on the API (read in its source: chaosk8s/*/).
NEEDS = {
    "terminate_pods": {("", "pods", "list"), ("", "pods", "delete")},
    "count_min_pods": {("", "pods", "list")},
    "count_pods": {("", "pods", "list")},
    "scale_deployment": {("apps", "deployments", "patch")},
    "deployment_available_and_healthy": {("apps", "deployments", "list")},
    "deny_all_ingress": {("networking.k8s.io", "networkpolicies", "create")},
    "create_network_policy": {("networking.k8s.io", "networkpolicies", "create")},
    "remove_deny_all_ingress": {("networking.k8s.io", "networkpolicies", "delete")},
    "remove_network_policy": {("networking.k8s.io", "networkpolicies", "delete")},
}


def _activities(experiment: dict) -> list[dict]:
    hypothesis = experiment.get("steady-state-hypothesis", {}).get("probes", [])
    return [*hypothesis, *experiment.get("method", []), *experiment.get("rollbacks", [])]


def _defaults(experiment: dict) -> dict[str, str]:
    return {k: v["default"] for k, v in experiment["configuration"].items()}


def test_there_are_the_three_experiments() -> None:
    assert {p.stem for p in EXPERIMENTS} == {"payments-pod-kill", "payments-all-down", "payments-network-deny"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_chaos_validate(path: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(VENV_BIN / "chaos"), "--no-version-check", "--no-log-file", "validate", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "look valid" in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_the_role_allows_every_api_call(path: Path) -> None:
    experiment = json.loads(path.read_text(encoding="utf-8"))
    role = named("base", "Role", "chaos-runner")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    for activity in _activities(experiment):
        provider = activity["provider"]
        if provider["type"] != "python":
            continue
        assert provider["module"].startswith("chaosk8s."), f"{activity['name']}: not chaostoolkit-kubernetes"
        needed = NEEDS[provider["func"]]
        assert needed <= granted, f"{activity['name']}: the Role lacks {needed - granted}"
        assert provider["arguments"].get("ns") == "${ns}", f"{activity['name']}: must stay in the lab namespace"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_targets_exist_in_the_rendered_manifests(path: Path) -> None:
    experiment = json.loads(path.read_text(encoding="utf-8"))
    defaults = _defaults(experiment)
    assert defaults["ns"] == "chaoslab"
    services = {s["metadata"]["name"]: s for s in of_kind("base", "Service")}
    pods = [pod_labels(w) for w in of_kind("base", "Deployment")]
    for activity in _activities(experiment):
        provider = activity["provider"]
        if provider["type"] == "http":
            url = urlsplit(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], provider["url"]))
            name, namespace = url.hostname.split(".")[:2]
            assert namespace == "chaoslab" and name in services, url.hostname
            assert url.port in {p["port"] for p in services[name]["spec"]["ports"]}, f"{name}:{url.port}"
            continue
        arguments = provider["arguments"]
        if "label_selector" in arguments:
            key, value = arguments["label_selector"].split("=")
            assert any(labels.get(key) == value for labels in pods), arguments["label_selector"]
        if "label_selectors" in arguments:
            assert any(selector_matches({"matchLabels": arguments["label_selectors"]}, p) for p in pods)
        if "name" in arguments and provider["func"] != "remove_network_policy":
            assert arguments["name"] in {d["metadata"]["name"] for d in of_kind("base", "Deployment")}
        if provider["func"] == "remove_network_policy":
            named("base", "NetworkPolicy", arguments["name"])  # exists


def test_network_deny_restores_the_policy_it_removes() -> None:
    experiment = json.loads((FOLDER / "payments-network-deny.json").read_text(encoding="utf-8"))
    removed = [a["provider"]["arguments"]["name"] for a in experiment["method"]
               if a["provider"].get("func") == "remove_network_policy"]
    restored = [a["provider"]["arguments"]["spec"] for a in experiment["rollbacks"]
                if a["provider"].get("func") == "create_network_policy"]
    assert removed == [r["metadata"]["name"] for r in restored] == ["payments-ingress"]
    rendered = named("base", "NetworkPolicy", "payments-ingress")
    rendered = {**rendered, "metadata": {k: v for k, v in rendered["metadata"].items() if k != "namespace"}}
    assert restored[0] == rendered
    undo = {a["provider"]["func"] for a in experiment["rollbacks"]}
    assert {"remove_deny_all_ingress", "create_network_policy"} <= undo
    # Scale-to-zero is undone to the HPA's minimum, which hands the count back to the HPA.
    down = json.loads((FOLDER / "payments-all-down.json").read_text(encoding="utf-8"))
    (rollback,) = down["rollbacks"]
    hpa = [h for h in of_kind("base", "HorizontalPodAutoscaler") if h["metadata"]["name"] == "payments"][0]
    assert rollback["provider"]["arguments"]["replicas"] == hpa["spec"]["minReplicas"]


def test_the_job_runs_every_experiment_with_rollbacks_always() -> None:
    script = (FOLDER / "run-experiments.sh").read_text(encoding="utf-8")
    assert {f"{p.stem}.json" for p in EXPERIMENTS} <= set(re.findall(r"/([a-z-]+\.json)", script))
    assert "--rollback-strategy always" in script
    (job,) = of_kind("overlays/chaos", "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "/app/chaos/k8s/run-experiments.sh"]
    assert {"name": "CHAOSTOOLKIT_IN_POD", "value": "true"} in container["env"]
    assert "chaos-experiments" not in {w["metadata"]["name"] for layer in LAYERS[:3] for w in of_kind(layer, "Job")}


def test_run_script_fails_when_the_steady_state_is_not_met(tmp_path: Path) -> None:
    """The script judges the journal with chaoslab.chaos.verdict: against a cluster and a gateway that are not
    there the steady state is missed, `chaos run` skips the method, and the script must report a failure."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connection refused
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
               "KUBECONFIG": str(tmp_path / "no-kubeconfig"), "CHAOSLAB_JOURNAL_DIR": str(tmp_path),
               "CHAOSLAB_GATEWAY_URL": f"http://127.0.0.1:{closed}",
               "CHAOSLAB_PAYMENTS_ADMIN_URL": f"http://127.0.0.1:{closed}"}
        done = subprocess.run(["sh", str(FOLDER / "run-experiments.sh"), str(FOLDER / "payments-pod-kill.json")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "payments-pod-kill FAILED" in done.stderr
    journal = json.loads((tmp_path / "payments-pod-kill.json").read_text(encoding="utf-8"))
    assert journal["steady_states"]["before"]["steady_state_met"] is False
