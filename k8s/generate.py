"""Generate the repetitive Kubernetes manifests from the shop's contract, and the PrometheusRule from the alert rules.

    python k8s/generate.py           # rewrite the generated files
    python k8s/generate.py --check   # exit 1 when a generated file is stale (the tests run this)

The services, who calls whom and who uses the database or the broker come from services/contract.py.
Written here: k8s/base/services/<service>.yaml (Deployment, Service, HPA, PDB per service),
k8s/base/networkpolicies.yaml (default deny + the call graph), copies of the compose stack's Postgres init
script and RabbitMQ configuration (kustomize only reads files below a kustomization), and
k8s/overlays/observability/prometheusrule.yaml (alerts/rules/standard.rules.yml, verbatim, in a CR), and the
Istio overlay's service accounts, workload patches, PeerAuthentications and AuthorizationPolicies (k8s/istio.py).
Hand-written: kustomization files, namespace, Postgres, RabbitMQ, RBAC, the overlays' monitors and OTLP egress,
the add-ons' Jobs and policies, the payments-inflight-hpa component.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python k8s/generate.py` puts k8s/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

import istio  # noqa: E402 - k8s/istio.py, beside this file

from services import contract  # noqa: E402 - after the path set-up above

K8S = ROOT / "k8s"
IMAGE = "chaoslab/app"  # kustomize `images:` sets the tag
SECRET = "chaoslab-secrets"  # from the base's secretGenerator
NAME = "app.kubernetes.io/name"

# The shop's services, who calls whom, who has a database or the broker: services/contract.py. The
# NetworkPolicies allow exactly these edges (tests/deploy/test_k8s_network.py checks them against its own list).
SERVICES: dict[str, contract.ServiceFacts] = {s.name: s for s in contract.SERVICES}
HTTP, ADMIN, GRPC = contract.CONTAINER_HTTP_PORT, contract.CONTAINER_ADMIN_PORT, contract.CONTAINER_GRPC_PORT
# Where Prometheus runs (the Prometheus Operator's pods, kube-prometheus-stack labels).
PROMETHEUS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                   "podSelector": {"matchLabels": {NAME: "prometheus"}}}
DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}

# How long a stopping pod keeps serving after it has left its Service's endpoints (the kit's SHUTDOWN_DELAY_S), and
# the most the kit's shutdown takes after that: the public port's drain, then the consumer's (services/kit/app.py
# and consumer.py, DRAIN_TIMEOUT_S, 10 s each), with a margin for the pools. The grace period covers both.
SHUTDOWN_DELAY_S = 5
KIT_SHUTDOWN_S = 25
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _labels(service: str) -> dict[str, str]:
    return {NAME: service, "app.kubernetes.io/component": "service"}


def _service_port(service: str) -> int:
    return GRPC if SERVICES[service].is_grpc else HTTP


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def _callee_addresses(service: str) -> dict[str, str]:
    """How a service finds the services it calls (AUTH_URL, which every service gets, aside), by the variable
    its callers read: USERS_URL=http://users:8080, PAYMENTS_GRPC_ADDR=payments:50051, ..."""
    out = {}
    for callee in SERVICES[service].calls:
        facts = SERVICES[callee]
        if callee != "auth":
            out[facts.address_variable] = f"{callee}:{GRPC}" if facts.is_grpc else f"http://{callee}:{HTTP}"
    return out


def _env(service: str) -> list[dict[str, Any]]:
    spec = SERVICES[service]
    env: list[dict[str, Any]] = [
        {"name": "HTTP_HOST", "value": "0.0.0.0"},
        {"name": "HTTP_PORT", "value": str(HTTP)},
        {"name": "ADMIN_PORT", "value": str(ADMIN)},
        # The pod name: logs, spans and the `replica` label then name the same thing.
        {"name": "REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        _secret("ADMIN_TOKEN", "admin-token"),
        {"name": "AUTH_URL", "value": "http://auth:8080"},
        {"name": "LOG_LEVEL", "value": "info"},
        # No trace backend in the base: record no span. Without an OTLP endpoint the kit appends every recorded
        # span to a file under SPANS_DIR (native mode's trace store), which here grows on the pod's /tmp emptyDir
        # until the kubelet evicts the pod. The observability overlay sets the endpoint and this back to 1.0 by its
        # index, 7 (its patch tests the name there first: keep the entries above it the same for every service).
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0"},
        # The kubelet takes a terminating pod out of its Service's endpoints while it sends SIGTERM, and kube-proxy
        # on every node learns it a few seconds later: the kit answers not ready but keeps serving that long
        # before it closes its port, so a rolling update drops no request (no preStop sleep needed).
        {"name": "SHUTDOWN_DELAY_S", "value": str(SHUTDOWN_DELAY_S)},
    ]
    if spec.database:
        # Kubernetes expands $(DB_PASSWORD) from the variable defined before it: the URL never holds a secret.
        url = f"postgresql+asyncpg://{service}:$(DB_PASSWORD)@postgres:5432/{service}"
        env += [_secret("DB_PASSWORD", f"{service}-db-password"), {"name": "DATABASE_URL", "value": url}]
    if spec.broker:
        env += [_secret("RABBITMQ_USER", "rabbitmq-user"), _secret("RABBITMQ_PASSWORD", "rabbitmq-password"),
                {"name": "AMQP_URL", "value": "amqp://$(RABBITMQ_USER):$(RABBITMQ_PASSWORD)@rabbitmq:5672/"}]
    if service == "auth":
        env.append(_secret("BOOTSTRAP_ADMIN", "bootstrap-admin"))
    env += [{"name": k, "value": v} for k, v in _callee_addresses(service).items()]
    if spec.is_grpc:
        env.append({"name": "GRPC_PORT", "value": str(GRPC)})
    return env


def deployment(service: str) -> dict[str, Any]:
    ports = [{"name": "admin", "containerPort": ADMIN}]
    ports.insert(0, {"name": "grpc", "containerPort": GRPC} if SERVICES[service].is_grpc
                 else {"name": "http", "containerPort": HTTP})
    probe = {"httpGet": {"path": "/health/ready", "port": "admin"}, "periodSeconds": 5, "timeoutSeconds": 2,
             "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": service, "labels": _labels(service)},
        # No `replicas`: the HPA owns the count, and `kubectl apply` must not reset it.
        "spec": {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {NAME: service}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(service)},
                "spec": {
                    "automountServiceAccountToken": False,  # the services never talk to the API server
                    "enableServiceLinks": False,  # no injected <SERVICE>_PORT variables in their environment
                    # The kit's shutdown delay, then its drains and lifetimes; the kubelet sends SIGKILL after it.
                    "terminationGracePeriodSeconds": SHUTDOWN_DELAY_S + KIT_SHUTDOWN_S,
                    "securityContext": POD_SECURITY,
                    "containers": [{
                        "name": service,
                        "image": f"{IMAGE}:dev",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-m", f"services.{service}"],
                        "ports": ports,
                        "env": _env(service),
                        "startupProbe": {"httpGet": {"path": "/health/live", "port": "admin"}, "periodSeconds": 2,
                                         "timeoutSeconds": 2, "failureThreshold": 30},
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "httpGet": {"path": "/health/live", "port": "admin"},
                                          "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "1", "memory": "256Mi"}},
                        "securityContext": CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def k8s_service(service: str) -> dict[str, Any]:
    main = ({"name": "grpc", "port": GRPC, "targetPort": "grpc", "appProtocol": "grpc"}
            if SERVICES[service].is_grpc else {"name": "http", "port": HTTP, "targetPort": "http"})
    return {
        "apiVersion": "v1", "kind": "Service",
        # chaoslab.dev/scrape selects it for the observability overlay's ServiceMonitor.
        "metadata": {"name": service, "labels": {**_labels(service), "chaoslab.dev/scrape": "true"}},
        "spec": {"selector": {NAME: service},
                 "ports": [main, {"name": "admin", "port": ADMIN, "targetPort": "admin"}]},
    }


def hpa(service: str) -> dict[str, Any]:
    # CPU only, from metrics-server, which docs/deploy.md requires. payments is I/O-bound and also scales well on
    # its in-flight gauge, but that Pods metric needs prometheus-adapter, and an HPA with a metric nobody serves
    # never scales down: it is the opt-in component k8s/components/payments-inflight-hpa.
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": service, "labels": _labels(service)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
            "minReplicas": 2,  # two, so that a pod kill or a node drain never takes a service out
            "maxReplicas": 8 if service == "payments" else 6,
            "metrics": [{"type": "Resource",
                         "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}},
        },
    }


def pdb(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": service, "labels": _labels(service)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {NAME: service}}},
    }


def _pods(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {NAME: name}}}


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def _policy(name: str, selector: dict[str, Any], kind: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
            "spec": {"podSelector": selector, "policyTypes": [kind], kind.lower(): rules}}


def network_policies() -> list[dict[str, Any]]:
    """Default deny both ways, DNS for everyone, then one ingress and one egress policy per workload.

    Ingress and egress are separate policies so that an experiment can lift one side only (the chaos overlay
    removes payments-ingress to make deny_all_ingress bite: policies are unions, so an allow would win)."""
    callers = {s: [c for c, spec in SERVICES.items() if s in spec.calls] for s in SERVICES}
    policies = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        _policy("allow-dns", {}, "Egress", [{"to": [DNS_PEER], "ports": [{"protocol": "UDP", "port": 53},
                                                                          {"protocol": "TCP", "port": 53}]}]),
    ]
    for service, spec in SERVICES.items():
        port = _service_port(service)
        if service == "gateway":
            main = [{"ports": _ports(port)}]  # the entry point: from anywhere (ingress controller, port-forward)
        elif callers[service]:
            main = [{"from": [_pods(c) for c in callers[service]], "ports": _ports(port)}]
        else:
            main = []
        scrape = [{"from": [PROMETHEUS_PEER], "ports": _ports(ADMIN)}]
        policies.append(_policy(f"{service}-ingress", _pods(service)["podSelector"], "Ingress", main + scrape))
        egress = [{"to": [_pods(c)], "ports": _ports(_service_port(c))} for c in spec.calls]
        if spec.database:
            egress.append({"to": [_pods("postgres")], "ports": _ports(5432)})
        if spec.broker:
            egress.append({"to": [_pods("rabbitmq")], "ports": _ports(5672)})
        policies.append(_policy(f"{service}-egress", _pods(service)["podSelector"], "Egress", egress))
    db_clients = [s for s, spec in SERVICES.items() if spec.database]
    amqp_clients = [s for s, spec in SERVICES.items() if spec.broker]
    policies.append(_policy("postgres-ingress", _pods("postgres")["podSelector"], "Ingress",
                            [{"from": [_pods(c) for c in db_clients], "ports": _ports(5432)}]))
    policies.append(_policy("rabbitmq-ingress", _pods("rabbitmq")["podSelector"], "Ingress",
                            [{"from": [_pods(c) for c in amqp_clients], "ports": _ports(5672)},
                             {"from": [PROMETHEUS_PEER], "ports": _ports(15692)}]))
    return policies


def prometheus_rule() -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "alerts" / "rules" / "standard.rules.yml").read_text(encoding="utf-8"))
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "chaoslab-standard", "labels": {NAME: "chaoslab", "role": "alert-rules"}},
        "spec": {"groups": rules["groups"]},
    }


def _dump(*documents: dict[str, Any]) -> str:
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=1_000_000) for d in documents)
    return "# Generated by k8s/generate.py: edit the generator, not this file.\n" + body


def outputs() -> dict[Path, str]:
    files = {K8S / "base" / "services" / f"{s}.yaml": _dump(deployment(s), k8s_service(s), hpa(s), pdb(s))
             for s in SERVICES}
    files[K8S / "base" / "networkpolicies.yaml"] = _dump(*network_policies())
    files[K8S / "overlays" / "observability" / "prometheusrule.yaml"] = _dump(prometheus_rule())
    # The Istio overlay's identities, mTLS and AuthorizationPolicies, from the same call graph (k8s/istio.py).
    files.update({K8S / "overlays" / "istio" / name: _dump(*docs) for name, docs in istio.files().items()})
    # The same files as the compose stack mounts: one source, copied where kustomize may read them.
    for src, dest in (("compose/postgres/init-databases.sh", "base/postgres/init-databases.sh"),
                      ("compose/rabbitmq/enabled_plugins", "base/rabbitmq/enabled_plugins"),
                      ("compose/rabbitmq/rabbitmq.conf", "base/rabbitmq/rabbitmq.conf")):
        files[K8S / dest] = (ROOT / src).read_text(encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale (run python k8s/generate.py):", *map(str, stale), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
