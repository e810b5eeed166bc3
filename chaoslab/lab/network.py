"""The isolated lab network (`chaoslab up --network isolated`): every replica and the lab's RabbitMQ node a host of
its own, in a network namespace on a bridge of the lab's own, routed through the host end of the bridge.

Addresses: one private /24 per lab, derived from its base port B (10.(B >> 8).(B & 255).0/24, so every base has
its own and 18000 is 10.70.80.0/24), refused when any route or address of the machine overlaps it:

- .1: the host end of the bridge: the router between the lab's hosts, and where the clients (Locust, the CLI, the
  user), Prometheus, Alertmanager and the readiness prober are;
- .2: RabbitMQ;
- .10 + 20*i + (n-1): replica n of service i (the order of services/contract.py), like the admin ports;
- .200 + i: the service address of service i, a virtual address no host owns (a Kubernetes ClusterIP).

Each host's namespace holds its own address as a /32 and reaches the rest of the /24 through .1: every packet
between two hosts is routed by the host namespace, where the lab's chains see it (FORWARD), rewrite a service
address to a ready replica (nat PREROUTING/OUTPUT, as kube-proxy does: chaoslab.lab.endpoints) and where the
faults below the application are applied (chaoslab.kernel). The host drops whatever would leave the bridge: no
lab namespace has a default route, and nothing is NATed to the outside.

Names carry the lab's base port: namespaces `chaoslab-<B>-<host>`, the bridge `cl<B>br`, the host end of a
host's link `cl<B>h<last octet>` (the namespace end is `eth0`), chains `CHAOSLAB-<B>[-...]`. teardown() finds
everything by these names, so it cleans up after a crash as well as after a clean run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.lab import iptables, netpolicy
from chaoslab.lab.ports import MAX_REPLICAS, SERVICES, PortPlan

LOOPBACK = "loopback"
ISOLATED = "isolated"
MODES = (LOOPBACK, ISOLATED)
NETNS_DIR = Path("/run/netns")
BROKER_HOST = "rabbitmq"
CLIENTS = "clients"  # the host end of the bridge, as a fault target
FIRST_REPLICA_OCTET = 10
FIRST_SERVICE_OCTET = 200


@dataclass(frozen=True)
class NetPlan:
    """The isolated network of the lab on base port `base`: addresses and names, computed, nothing created."""

    base: int

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{self.base >> 8}.{self.base & 255}.0/24")

    def _at(self, last: int) -> str:
        return str(self.subnet.network_address + last)

    @property
    def host_address(self) -> str:
        return self._at(1)

    @property
    def broker_address(self) -> str:
        return self._at(2)

    def replica_address(self, service: str, replica: int) -> str:
        if not 1 <= replica <= MAX_REPLICAS:
            raise ValueError(f"replica number {replica} out of range 1..{MAX_REPLICAS}")
        return self._at(FIRST_REPLICA_OCTET + 20 * SERVICES.index(service) + replica - 1)

    def service_address(self, service: str) -> str:
        return self._at(FIRST_SERVICE_OCTET + SERVICES.index(service))

    def address_of(self, host: str) -> str:
        """A host's address: `rabbitmq`, `clients` (the bridge's) or a replica name (`orders-2`)."""
        if host == BROKER_HOST:
            return self.broker_address
        if host == CLIENTS:
            return self.host_address
        service, _, number = host.rpartition("-")
        if service not in SERVICES or not number.isdigit():
            raise LabError(f"no host {host!r} in the lab's network (hosts: rabbitmq, clients, <service>-<n>)")
        return self.replica_address(service, int(number))

    # -- names -----------------------------------------------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return f"cl{self.base}br"

    @property
    def link_prefix(self) -> str:
        return f"cl{self.base}"

    def veth(self, host: str) -> str:
        return f"cl{self.base}h{self.address_of(host).rsplit('.', 1)[1]}"

    @property
    def netns_prefix(self) -> str:
        return f"chaoslab-{self.base}-"

    def netns(self, host: str) -> str:
        return f"{self.netns_prefix}{host}"

    def netns_path(self, host: str) -> Path:
        return NETNS_DIR / self.netns(host)

    @property
    def chain(self) -> str:
        """The lab's own chain in filter and nat; every other chain of the lab starts with it."""
        return f"CHAOSLAB-{self.base}"

    @property
    def forward_chain(self) -> str:
        return f"{self.chain}-ROUTED"

    @property
    def faults_chain(self) -> str:
        """The chain that jumps to each fault's own chain, `<faults_chain><n>` (fault_chain(n))."""
        return f"{self.chain}-F"

    def is_fault_chain(self, name: str) -> bool:
        rest = name[len(self.faults_chain):]
        return name.startswith(self.faults_chain) and rest.isdigit()

    @property
    def no_endpoints_chain(self) -> str:
        return f"{self.chain}-NOEP"

    def service_chain(self, service: str) -> str:
        return f"{self.chain}-S{SERVICES.index(service)}"

    def observer_ports(self) -> str:
        """The ports of the lab's observation and control plane that faults never touch: RabbitMQ's metrics port
        and every replica's admin port (health, metrics, admin API): Prometheus keeps scraping and the verdict is
        judged on telemetry that the fault did not impair."""
        ports = PortPlan(self.base)
        return f"{ports.rabbitmq_metrics},{ports.base + 100}:{ports.base + 219}"

    def enter(self, host: str) -> list[str]:
        """The command prefix that runs a program in a host's namespace (its network only: same files)."""
        return ["nsenter", f"--net={self.netns_path(host)}", "--"]


@contextlib.contextmanager
def netlink(netns_name: str | None = None) -> Iterator[Any]:
    """A pyroute2 IPRoute bound to a namespace (the host's when None). Its socket is opened from a thread that
    entered the namespace for that moment, not through pyroute2's NetNS, which forks a child: in a long-lived
    process (chaos run, the endpoints controller) that child inherited the caller's signal handlers and ran on
    as a copy of it."""
    from pyroute2 import IPRoute, netns

    if netns_name:
        netns.pushns(netns_name)
        try:
            ipr = IPRoute()
        finally:
            netns.popns()
    else:
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


# -- checks --------------------------------------------------------------------------------------------------------

def overlapping_routes(plan: NetPlan) -> list[str]:
    """Routes and addresses of this machine that overlap the lab's /24 (its own bridge's excepted)."""
    from pyroute2 import IPRoute

    found = []
    with IPRoute() as ipr:
        ours = ipr.link_lookup(ifname=plan.bridge)
        for route in ipr.route("dump", family=2):
            dst, length = route.get("dst"), route["dst_len"]
            if not dst or length == 0 or route.get("oif") in ours:
                continue
            net = ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
            if net.overlaps(plan.subnet):
                found.append(f"route {net} (table {route.get('table')})")
        for addr in ipr.get_addr(family=2):
            if addr["index"] in ours:
                continue
            ip = ipaddress.IPv4Address(addr.get("address"))
            if ip in plan.subnet:
                found.append(f"address {ip}")
    return found


# -- the topology --------------------------------------------------------------------------------------------------

def _ensure_bridge(plan: NetPlan) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=plan.bridge):
            ipr.link("add", ifname=plan.bridge, kind="bridge")
        index = ipr.link_lookup(ifname=plan.bridge)[0]
        have = {a.get("address") for a in ipr.get_addr(index=index, family=2)}
        if plan.host_address not in have:
            ipr.addr("add", index=index, address=plan.host_address, prefixlen=24)
        ipr.link("set", index=index, state="up")
    # Our own interface: it forwards what it receives (the host routes between the lab's hosts; IPv4 forwarding is
    # decided per receiving interface, so the machine's ip_forward and its other interfaces stay as they are),
    # and no IPv6 chatter on the lab's segment.
    Path(f"/proc/sys/net/ipv4/conf/{plan.bridge}/forwarding").write_text("1")
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{plan.bridge}/disable_ipv6").write_text("1")


def add_host(plan: NetPlan, host: str) -> None:
    """A namespace for `host` with its address, its link on the bridge and routes through .1 (idempotent)."""
    from pyroute2 import IPRoute, netns

    name, veth, peer = plan.netns(host), plan.veth(host), f"{plan.veth(host)}p"
    if name not in netns.listnetns():
        netns.create(name)
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=veth):
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": peer, "net_ns_fd": name})
        index = ipr.link_lookup(ifname=veth)[0]
        bridge = ipr.link_lookup(ifname=plan.bridge)[0]
        ipr.link("set", index=index, master=bridge, state="up")
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6").write_text("1")
    address = plan.address_of(host)
    with netlink(name) as ns:
        found = ns.link_lookup(ifname=peer) or ns.link_lookup(ifname="eth0")
        index = found[0]
        ns.link("set", index=index, ifname="eth0")
        if address not in {a.get("address") for a in ns.get_addr(index=index, family=2)}:
            ns.addr("add", index=index, address=address, prefixlen=32)
        ns.link("set", index=index, state="up")
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        routes = {(r.get("dst"), r["dst_len"]) for r in ns.route("dump", family=2, table=254)}
        if (plan.host_address, 32) not in routes:
            ns.route("add", dst=f"{plan.host_address}/32", oif=index, scope=253)
        if (str(plan.subnet.network_address), 24) not in routes:
            ns.route("add", dst=str(plan.subnet), gateway=plan.host_address, oif=index)


def remove_host(plan: NetPlan, host: str) -> None:
    """End the processes in a host's namespace, then delete it and its link."""
    kill_processes_in(plan, [host])
    _delete_netns(plan.netns(host))
    _delete_links([plan.veth(host)])


def install_chains(plan: NetPlan) -> None:
    """The lab's chains and the jumps into them (idempotent). The service chains start empty (every service
    address refused: no endpoint is ready yet); the endpoints controller fills them."""
    br, chain = plan.bridge, plan.chain
    iptables.replace("filter", {
        chain: [
            # the host routes between hosts on one segment and would tell them so: never
            "-p icmp -m icmp --icmp-type 5 -j DROP",
            f"-j {plan.faults_chain}",
            f"-j {plan.no_endpoints_chain}",
        ],
        plan.forward_chain: [
            # nothing leaves the lab's segment, and nothing from elsewhere enters it
            f"! -o {br} -j DROP",
            f"! -i {br} -j DROP",
            f"-j {chain}",
            f"-j {netpolicy.chain_of(plan)}",  # between hosts, only what the call graph allows
            "-j ACCEPT",
        ],
        netpolicy.chain_of(plan): netpolicy.rules(plan),
        plan.faults_chain: [f"-p tcp -m multiport --ports {plan.observer_ports()} -j RETURN"],
        plan.no_endpoints_chain: [],
    })
    iptables.replace("nat", {chain: [], netpolicy.chain_of(plan): netpolicy.nat_rules(plan)})
    iptables.ensure_jump("filter", "FORWARD", ["-o", br, "-j", plan.forward_chain])
    iptables.ensure_jump("filter", "FORWARD", ["-i", br, "-j", plan.forward_chain])
    iptables.ensure_jump("filter", "INPUT", ["-i", br, "-j", chain])
    iptables.ensure_jump("filter", "OUTPUT", ["-o", br, "-j", chain])
    iptables.ensure_jump("nat", "PREROUTING", ["-i", br, "-j", chain])
    # inserted at the head after the dispatch's jump: the policy decides first which connections get a replica
    iptables.ensure_jump("nat", "PREROUTING", ["-i", br, "-j", netpolicy.chain_of(plan)])
    iptables.ensure_jump("nat", "OUTPUT", ["-d", str(plan.subnet), "-j", chain])


def setup(plan: NetPlan, hosts: list[str]) -> None:
    """The bridge (forwarding on it alone), the chains and one namespace per host."""
    _ensure_bridge(plan)
    install_chains(plan)
    for host in hosts:
        add_host(plan, host)


# -- what exists, and removing it ----------------------------------------------------------------------------------

def namespaces(plan: NetPlan) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(plan.netns_prefix))


def links(plan: NetPlan) -> list[str]:
    """The lab's links in the host namespace (the bridge and the host ends of the hosts' links)."""
    return sorted(name for name in os.listdir("/sys/class/net") if name.startswith(plan.link_prefix))


def _netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except OSError:
        return None


def processes_in(plan: NetPlan, hosts: list[str] | None = None) -> list[int]:
    """Pids of every process whose network namespace is one of the lab's (of `hosts`, or all)."""
    names = [plan.netns(h) for h in hosts] if hosts is not None else namespaces(plan)
    inodes = {i for i in (_netns_inode(n) for n in names) if i is not None}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            link = os.readlink(entry / "ns" / "net")  # "net:[4026532345]"
        except OSError:
            continue
        if int(link[5:-1]) in inodes:
            pids.append(int(entry.name))
    return pids


def kill_processes_in(plan: NetPlan, hosts: list[str] | None = None, grace_s: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process in the lab's namespaces (epmd, whatever supervisord did not end)."""
    pids = processes_in(plan, hosts)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and processes_in(plan, hosts):
        time.sleep(0.1)
    for pid in processes_in(plan, hosts):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _delete_netns(name: str) -> None:
    from pyroute2 import netns

    if name in netns.listnetns():
        netns.remove(name)


def _delete_links(names: list[str]) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for name in names:
            for index in ipr.link_lookup(ifname=name):
                with contextlib.suppress(Exception):
                    ipr.link("del", index=index)


def teardown(plan: NetPlan) -> dict[str, list[str]]:
    """Remove everything of the lab's network, found by name: its processes' namespaces, links, the bridge and
    every chain. What was removed, by kind."""
    removed: dict[str, list[str]] = {"processes": [str(p) for p in kill_processes_in(plan)]}
    removed["namespaces"] = namespaces(plan)
    for name in removed["namespaces"]:
        _delete_netns(name)
    removed["links"] = links(plan)
    hosts_first = sorted(removed["links"], key=lambda n: n == plan.bridge)
    _delete_links(hosts_first)
    removed["chains"] = iptables.remove_prefix(plan.chain) if iptables.available() else []
    return {k: v for k, v in removed.items() if v}


def leftovers(plan: NetPlan) -> dict[str, list[str]]:
    """What of the lab's network exists now (empty when it is all gone)."""
    found = {
        "namespaces": namespaces(plan),
        "links": links(plan),
        "chains": [f"{t}:{c}" for t in iptables.TABLES for c in iptables.chains(t, plan.chain)]
        if iptables.available() and os.geteuid() == 0 else [],
        "processes": [str(p) for p in processes_in(plan)],
    }
    return {k: v for k, v in found.items() if v}
