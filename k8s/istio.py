"""The Istio overlay (k8s/overlays/istio), generated from the shop's call graph (services/contract.py): mutual TLS
between every pod and authorization by the caller's identity, as the native lab does with its own CA
(services/kit/tls.py, authz.py), here done by the mesh's sidecars while the services speak plain HTTP, gRPC, AMQP
and PostgreSQL inside their pods.

- a ServiceAccount per service (and for PostgreSQL and RabbitMQ): Istio's identity of a pod is its service account,
  spiffe://cluster.local/ns/chaoslab/sa/<name>, the native lab's identities with the mesh's trust domain; the
  Deployments and StatefulSets are patched to run under theirs (workload-identities.yaml);
- PeerAuthentication: STRICT for the namespace; per workload PERMISSIVE on the admin port only (Prometheus, outside
  the mesh, scrapes it; its token guards it) and, for the gateway, on its public port (the shop's entry: an ingress
  or a port-forward without a sidecar);
- AuthorizationPolicy: `allow-nothing` for the namespace, then per workload ALLOW: its port to the principals of the
  services whose `calls` name it (PostgreSQL to the services with a database, RabbitMQ to those with the broker),
  and its admin port (metrics, health, the admin API) to anyone;
- a NetworkPolicy letting the sidecars reach istiod (the base denies every egress outside the call graph).

Written by k8s/generate.py (outputs() includes these files); validated offline against Istio v1.30.3's CRD schemas
(tests/deploy/test_istio.py).
"""

from __future__ import annotations

from typing import Any

from services import contract

NAMESPACE = "chaoslab"
MESH_TRUST_DOMAIN = "cluster.local"  # Istio's default; a mesh with another sets it in its MeshConfig
NAME = "app.kubernetes.io/name"
HTTP, ADMIN, GRPC = contract.CONTAINER_HTTP_PORT, contract.CONTAINER_ADMIN_PORT, contract.CONTAINER_GRPC_PORT
POSTGRES, AMQP, RABBITMQ_METRICS = 5432, 5672, 15692
SECURITY = "security.istio.io/v1"


def principal(name: str) -> str:
    """An Istio principal: the pod's service account's SPIFFE ID without its scheme."""
    return f"{MESH_TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{name}"


def service_port(service: str) -> int:
    return GRPC if contract.facts(service).is_grpc else HTTP


def workloads() -> dict[str, dict[str, Any]]:
    """Every workload of the base: its port, who may call it there, and its public port to anyone or not."""
    out: dict[str, dict[str, Any]] = {}
    for service in contract.SERVICE_NAMES:
        out[service] = {"port": service_port(service), "callers": list(contract.callers_of(service)),
                        "open": contract.is_edge(service), "admin": ADMIN}
    out["postgres"] = {"port": POSTGRES, "callers": [s.name for s in contract.SERVICES if s.database],
                       "open": False, "admin": None}
    out["rabbitmq"] = {"port": AMQP, "callers": [s.name for s in contract.SERVICES if s.broker], "open": False,
                       "admin": RABBITMQ_METRICS}
    return out


def _selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAME: name}}


def service_accounts() -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "labels": {NAME: name}},
             "automountServiceAccountToken": False} for name in workloads()]


def workload_patches() -> list[dict[str, Any]]:
    """Strategic-merge patches: each service's Deployment, and PostgreSQL's and RabbitMQ's StatefulSets, run under
    a service account of their own (their identity in the mesh)."""
    kinds = {**dict.fromkeys(contract.SERVICE_NAMES, "Deployment"), "postgres": "StatefulSet",
             "rabbitmq": "StatefulSet"}
    return [{"apiVersion": "apps/v1", "kind": kinds[name], "metadata": {"name": name},
             "spec": {"template": {"spec": {"serviceAccountName": name}}}} for name in workloads()]


def peer_authentications() -> list[dict[str, Any]]:
    docs = [{"apiVersion": SECURITY, "kind": "PeerAuthentication", "metadata": {"name": "default"},
             "spec": {"mtls": {"mode": "STRICT"}}}]
    for name, workload in workloads().items():
        plain = [port for port in (workload["admin"], workload["port"] if workload["open"] else None) if port]
        if plain:
            docs.append({"apiVersion": SECURITY, "kind": "PeerAuthentication", "metadata": {"name": name},
                         "spec": {"selector": _selector(name), "mtls": {"mode": "STRICT"},
                                  "portLevelMtls": {str(p): {"mode": "PERMISSIVE"} for p in plain}}})
    return docs


def authorization_policies() -> list[dict[str, Any]]:
    docs = [{"apiVersion": SECURITY, "kind": "AuthorizationPolicy", "metadata": {"name": "allow-nothing"},
             "spec": {}}]
    for name, workload in workloads().items():
        port = str(workload["port"])
        rules: list[dict[str, Any]] = []
        if workload["open"]:
            rules.append({"to": [{"operation": {"ports": [port]}}]})
        elif workload["callers"]:
            rules.append({"from": [{"source": {"principals": [principal(c) for c in workload["callers"]]}}],
                          "to": [{"operation": {"ports": [port]}}]})
        if workload["admin"]:
            rules.append({"to": [{"operation": {"ports": [str(workload["admin"])]}}]})
        docs.append({"apiVersion": SECURITY, "kind": "AuthorizationPolicy", "metadata": {"name": name},
                     "spec": {"selector": _selector(name), "action": "ALLOW", "rules": rules}})
    return docs


ISTIOD_XDS = 15012  # istiod's xDS and certificate signing port (the sidecars' only way to their certificates)


def istiod_egress() -> dict[str, Any]:
    """The base's NetworkPolicies deny every egress not in the call graph: the sidecars must reach istiod."""
    istiod = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
              "podSelector": {"matchLabels": {"app": "istiod"}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-istiod"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"to": [istiod], "ports": [{"protocol": "TCP", "port": ISTIOD_XDS}]}]}}


def files() -> dict[str, list[dict[str, Any]]]:
    """File name under k8s/overlays/istio -> its documents."""
    return {"serviceaccounts.yaml": service_accounts(), "workload-identities.yaml": workload_patches(),
            "peerauthentication.yaml": peer_authentications(),
            "authorizationpolicies.yaml": authorization_policies(), "networkpolicy-istiod.yaml": [istiod_egress()]}
