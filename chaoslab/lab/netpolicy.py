"""The isolated lab's network policy: default deny between the lab's hosts, and allow rules generated from the
shop's call graph (services/contract.py `calls`, the one the Kubernetes NetworkPolicies, Istio's
AuthorizationPolicies and the callees' own authorization come from), so a replica cannot even open a connection
that its service has no business opening.

The policy is the chain `CHAOSLAB-<B>-POL`, jumped to from the lab's forwarding chain (chaoslab.lab.network) after
the faults and before the final ACCEPT: every packet routed between two of the lab's hosts passes it after the
endpoints controller's DNAT, so it sees the replica's own address. It returns (lets through):

- packets of connections already open (conntrack: answers, and whatever a rule let open);
- a new TCP connection from a replica of a service to a replica of a service it calls, on that service's port;
- a new TCP connection from a replica of a service that uses the broker to RabbitMQ's AMQP port;

and refuses everything else at once (a TCP reset, or ICMP port unreachable: connect() fails with ECONNREFUSED),
so a refused connection is seen as one, not as a hang, counted by the rules' counters
(`iptables -L CHAOSLAB-<B>-POL -v`). A chain of the same name in the nat table, ahead of the service addresses'
dispatch, keeps a refused connection to a service address from being DNATed to a replica (`nat_rules`).
Replicas are matched by their service's whole address block (.10 + 20*i ... + 19): scaling needs no new rule. The host
end of the bridge (.1: clients, Prometheus, the endpoints prober, the CLI) is not routed through it: the observation
plane and the shop's public entry stay open, as on a Kubernetes node.
"""

from __future__ import annotations

from typing import Protocol

from chaoslab.lab.ports import MAX_REPLICAS, PortPlan
from services import contract

SUFFIX = "-POL"


class Plan(Protocol):
    """What the policy needs of the isolated network's plan (chaoslab.lab.network.NetPlan)."""

    base: int

    @property
    def chain(self) -> str: ...

    @property
    def broker_address(self) -> str: ...

    def replica_address(self, service: str, replica: int) -> str: ...

    def service_address(self, service: str) -> str: ...


def chain_of(plan: Plan) -> str:
    return f"{plan.chain}{SUFFIX}"


def block(plan: Plan, service: str) -> str:
    """Every address a replica of `service` can have, as an iprange."""
    return f"{plan.replica_address(service, 1)}-{plan.replica_address(service, MAX_REPLICAS)}"


def allowed(plan: Plan) -> list[tuple[str, str, str, str, int]]:
    """(caller, callee, caller's block, callee's address or block, port) for every edge of the call graph and every
    service's use of the broker."""
    ports = PortPlan(plan.base)
    edges = [(caller.name, callee, block(plan, caller.name), block(plan, callee), ports.service_port(callee))
             for caller in contract.SERVICES for callee in caller.calls]
    edges += [(s.name, contract.BROKER_IDENTITY, block(plan, s.name), plan.broker_address, ports.amqp)
              for s in contract.SERVICES if s.broker]
    return edges


def rules(plan: Plan) -> list[str]:
    """The policy chain's rules, in order (iptables-save's spelling, without `-A CHAIN`)."""
    out = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    for caller, callee, source, target, port in allowed(plan):
        if "-" in target:  # a service's block
            match = f"-m iprange --src-range {source} --dst-range {target}"
        else:  # one address: the broker's
            match = f"-d {target}/32 -m iprange --src-range {source}"
        out.append(f'-p tcp {match} -m tcp --dport {port} -m conntrack --ctstate NEW '
                   f'-m comment --comment "{caller} -> {callee}" -j RETURN')
    out += ['-p tcp -m comment --comment "not in the call graph" -j REJECT --reject-with tcp-reset',
            '-m comment --comment "not in the call graph" -j REJECT --reject-with icmp-port-unreachable']
    return out


def nat_rules(plan: Plan) -> list[str]:
    """The policy's side in the nat table, before the service addresses' dispatch (chaoslab.lab.endpoints): a
    connection to a service address that the call graph does not allow is not DNATed to a replica (ACCEPT ends the
    nat table's work on it), so the filter chain refuses it with a reset from the service address itself. A reset
    made behind the DNAT would come from the replica's own address, which the caller ignores (seen: a hang), and the
    ICMP errors that conntrack would translate back are rate-limited by the kernel (seen: refusals 1-3 s late)."""
    out = []
    for caller, callee, source, _, port in allowed(plan):
        if callee in contract.SERVICE_NAMES:
            address = plan.service_address(callee)
            out.append(f"-d {address}/32 -p tcp -m iprange --src-range {source} -m tcp --dport {port} "
                       f'-m comment --comment "{caller} -> {callee}" -j RETURN')
    addresses = ",".join(f"{plan.service_address(s)}/32" for s in contract.SERVICE_NAMES)
    out.append(f'-d {addresses} -m comment --comment "not in the call graph: no replica" -j ACCEPT')
    return out
