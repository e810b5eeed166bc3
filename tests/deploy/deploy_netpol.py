"""Which connections the rendered NetworkPolicies allow, computed the way Kubernetes evaluates them.

A connection from S to port p of D is allowed when S may send it (S is not egress-isolated, or some policy
selecting S has an egress rule matching D and p) and D may receive it (likewise for ingress). Policies add up;
a pod selected by no policy of a direction is open in that direction. Peers outside the namespace (Prometheus,
kube-dns, Jaeger, the API server, the rest of the world) are modelled with the labels they carry, and are not
subject to this namespace's policies.

Where network plugins differ, the edges are computed for each reading (`CNIS`), and a policy must give the call
graph under all of them: docs/deploy.md recommends Calico or Cilium. They differ on ipBlock peers: Calico
matches an ipBlock against IP addresses, pods' and nodes' included, while Cilium (policyCIDRMatchMode unset, its
default) matches only addresses outside the cluster ("world"), never a pod, a node or the API server, which it
knows as the host, remote-node or kube-apiserver entity (cilium/cilium#20550; docs.cilium.io, "Selecting nodes with
CIDR / ipBlock"; its k8s NetworkPolicy parser, pkg/k8s/network_policy.go, turns an ipBlock into toCIDRSet and a
rule without peers into the wildcard selector that matches every identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy_k8s import NAMESPACE, WORKLOADS, of_kind, pod_labels, pod_spec, selector_matches

NAME = "app.kubernetes.io/name"
NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


CNIS = ("calico", "cilium")


@dataclass
class Entity:
    name: str
    namespace: str | None  # None: an IP outside the cluster's pods (the API server, the world)
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    world: bool = False  # outside the cluster altogether (not a pod, a node or the API server)

    @property
    def ns_labels(self) -> dict[str, str]:
        return {NS_LABEL: self.namespace} if self.namespace else {}


EXTERNAL_SOURCES = (
    Entity("*", None),  # anything at all: an ingress controller, a port-forward, another namespace
    Entity("prometheus", "monitoring", {NAME: "prometheus"}),
)
EXTERNAL_DESTINATIONS = (
    Entity("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (Port(53, "UDP"), Port(53, "TCP"))),
    Entity("jaeger", "observability", {NAME: "jaeger"}, (Port(4317), Port(4318))),
    Entity("apiserver", None, {}, (Port(443), Port(6443))),
)


def workloads(layer: str) -> list[Entity]:
    out = []
    for workload in of_kind(layer, *WORKLOADS):
        labels = pod_labels(workload)
        ports = tuple(
            Port(p["containerPort"], p.get("protocol", "TCP"), p.get("name"))
            for c in pod_spec(workload)["containers"] for p in c.get("ports", [])
        )
        out.append(Entity(labels[NAME], NAMESPACE, labels, ports))
    return out


def _peer_matches(peer: dict[str, Any], entity: Entity, cni: str) -> bool:
    if "ipBlock" in peer:
        # Conservative: only a CIDR that covers everything is taken to cover an entity's address.
        covers = peer["ipBlock"]["cidr"] == "0.0.0.0/0" and not peer["ipBlock"].get("except")
        return covers and (cni == "calico" or entity.world)
    if entity.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], entity.ns_labels):
            return False
    elif entity.namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], entity.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, port: Port) -> bool:
    if not rule_ports:
        return True
    for rp in rule_ports:
        if rp.get("protocol", "TCP") != port.protocol:
            continue
        want = rp.get("port")
        if want is None or want == port.number or (isinstance(want, str) and want == port.name):
            return True
        if isinstance(want, int) and rp.get("endPort") and want <= port.number <= rp["endPort"]:
            return True
    return False


def _allowed(layer: str, subject: Entity, peer: Entity, port: Port, direction: str, cni: str) -> bool:
    """May `subject` (in this namespace) send to / receive from `peer` on `port`?"""
    if subject.namespace != NAMESPACE:
        return True  # not governed by this namespace's policies
    kind, key, peers_key = ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    isolated = False
    for policy in of_kind(layer, "NetworkPolicy"):
        spec = policy["spec"]
        if not selector_matches(spec["podSelector"], subject.labels):
            continue
        if kind not in spec.get("policyTypes", ["Ingress"]):
            continue
        isolated = True
        for rule in spec.get(key, []) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(p, peer, cni) for p in peers)) and _port_matches(rule.get("ports"),
                                                                                              port):
                return True
    return not isolated


def allowed_edges(layer: str, cni: str = "calico") -> set[tuple[str, str, str]]:
    inside = workloads(layer)
    edges = set()
    for source in [*inside, *EXTERNAL_SOURCES]:
        for dest in [*inside, *EXTERNAL_DESTINATIONS]:
            if dest.namespace != NAMESPACE and source.namespace != NAMESPACE:
                continue  # neither end is ours
            for port in dest.ports:
                if (_allowed(layer, source, dest, port, "egress", cni)
                        and _allowed(layer, dest, source, port, "ingress", cni)):
                    edges.add((source.name, dest.name, str(port)))
    # What anything may reach, no specific outside peer needs to be listed for.
    open_to_all = {(d, p) for s, d, p in edges if s == "*"}
    return {(s, d, p) for s, d, p in edges if s == "*" or not (s in ("prometheus",) and (d, p) in open_to_all)}



def allows(layer: str, source: Entity | str, dest: Entity | str, port: Port, cni: str = "calico") -> bool:
    """May `source` open `port` of `dest`? Each is a workload of the layer (by name) or an outside peer (an Entity:
    some stack's Prometheus pod, some installer's trace collector)."""
    inside = {w.name: w for w in workloads(layer)}
    src = inside[source] if isinstance(source, str) else source
    dst = inside[dest] if isinstance(dest, str) else dest
    return _allowed(layer, src, dst, port, "egress", cni) and _allowed(layer, dst, src, port, "ingress", cni)
