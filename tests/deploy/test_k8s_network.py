"""The NetworkPolicies allow exactly the call graph: the edges computed from the rendered policies
(deploy_netpol) are compared with the set written out below from docs/design.md and the issue, not with the
generator's own table, so a mistake in k8s/generate.py cannot agree with itself. Each layer must give that graph
under both readings of ipBlock (Calico's and Cilium's, deploy_netpol.CNIS)."""

from __future__ import annotations

import pytest
from deploy_k8s import named
from deploy_netpol import CNIS, allowed_edges
from deploy_support import SERVICES

pytestmark = pytest.mark.quick

HTTP, GRPC, ADMIN, PG, AMQP = "8080/TCP", "50051/TCP", "9090/TCP", "5432/TCP", "5672/TCP"
WITH_DB = ("auth", "users", "orders", "payments", "notifications")


def _dns(*sources: str) -> set[tuple[str, str, str]]:
    return {(s, "kube-dns", p) for s in sources for p in ("53/UDP", "53/TCP")}


BASE = (
    {("gateway", s, HTTP) for s in ("auth", "users", "orders", "notifications")}  # gateway -> its routes
    | {(s, "auth", HTTP) for s in ("users", "orders", "payments", "notifications")}  # everyone -> JWKS
    | {("orders", "users", HTTP), ("orders", "payments", GRPC), ("orders", "rabbitmq", AMQP)}
    | {("notifications", "rabbitmq", AMQP)}
    | {(s, "postgres", PG) for s in WITH_DB}  # each service -> its database
    | {("prometheus", s, ADMIN) for s in SERVICES} | {("prometheus", "rabbitmq", "15692/TCP")}
    | {("*", "gateway", HTTP)}  # the entry point, for any client
    | _dns(*SERVICES, "postgres", "rabbitmq")
)
TRACES = {(s, "jaeger", "4318/TCP") for s in SERVICES}
LOAD = {("locust", "gateway", HTTP)} | _dns("locust")
CHAOS = _dns("chaos-runner") | {
    ("chaos-runner", "gateway", HTTP), ("chaos-runner", "payments", ADMIN),
    ("chaos-runner", "apiserver", "443/TCP"), ("chaos-runner", "apiserver", "6443/TCP"),
}
EXPECTED = {
    "base": BASE,
    "overlays/observability": BASE | TRACES,
    "overlays/load": BASE | LOAD,
    "overlays/chaos": BASE | CHAOS,
    # The add-ons on the observed lab, as docs/deploy.md applies them: nothing of one takes from another.
    "observability+load+chaos": BASE | TRACES | LOAD | CHAOS,
}


@pytest.mark.parametrize("cni", CNIS)
@pytest.mark.parametrize("layer", list(EXPECTED))
def test_policies_allow_exactly_the_call_graph(layer: str, cni: str) -> None:
    allowed = allowed_edges(layer, cni)
    expected = EXPECTED[layer]
    assert not allowed - expected, f"allowed but not in the call graph: {sorted(allowed - expected)}"
    assert not expected - allowed, f"in the call graph but blocked: {sorted(expected - allowed)}"


def test_default_deny_covers_every_pod_both_ways() -> None:
    deny = named("base", "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")
