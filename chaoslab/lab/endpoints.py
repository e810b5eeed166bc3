"""The isolated network's endpoints controller: what kube-proxy and the endpoints controller do for a Kubernetes
Service, for the lab's service addresses. A supervisord program of every isolated lab (`endpoints`).

Every PERIOD_S it asks each replica's /health/ready (from the host end of the bridge, as a kubelet probes its
pods), and when the set of ready replicas of a service changed it rewrites that service's nat chain the way
kube-proxy's iptables mode does: a connection to the service address is DNATed to one ready replica, chosen by
`-m statistic --mode random` rules (1/n, 1/(n-1), ..., then the last), so every ready replica gets an equal share
of new connections; a replica that is killed, paused or not ready gets none once three probes in a row failed
(Kubernetes' failureThreshold), until one succeeds again (connections already open stay where they are, as with
kube-proxy; a killed replica's are reset by its kernel). A service without a ready replica is refused at once
(TCP reset), as kube-proxy rejects a Service without endpoints, instead of a connection timing out.

Each round it also ends the kernel faults whose TTL ran out (chaoslab.kernel.store), so that no fault outlives its
TTL, even when the process that injected it died.

It serves GET /health (200 once its chains are in place) and GET /endpoints ({"services": {name: {"address",
"port", "ready": [replica...]}}, "updated_at"}) on 127.0.0.1:B+23.

    python -m chaoslab.lab.endpoints --state-dir STATE
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from typing import Any

from chaoslab.lab import iptables, status_server
from chaoslab.lab.network import NetPlan, install_chains
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.probes import http_ok
from chaoslab.lab.spec import LabSpec, load_spec

PERIOD_S = 1.0
PROBE_TIMEOUT_S = 1.0
# Kubernetes' readiness defaults: out after this many failed probes in a row, back in after one success. One slow
# answer on a busy machine must not take a replica out (seen: orders flapping in and out under load).
FAILURE_THRESHOLD = 3

Ready = dict[str, list[str]]  # service -> names of its ready replicas, in replica order


def rules(spec: LabSpec, ready: Ready) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(nat chains, filter chains) for `ready`: the service addresses' dispatch, each service's DNAT chain, and
    the refusals of services without a ready replica."""
    net: NetPlan = spec.net
    dispatch: list[str] = []
    chains: dict[str, list[str]] = {}
    refuse: list[str] = []
    for service in SERVICES:
        address, port = net.service_address(service), spec.ports.service_port(service)
        match = f"-d {address}/32 -p tcp -m tcp --dport {port}"
        chain = net.service_chain(service)
        dispatch.append(f"{match} -j {chain}")
        names = ready.get(service, [])
        targets = [f"{net.address_of(name)}:{port}" for name in names]
        chains[chain] = [
            (f"-m statistic --mode random --probability {1 / (len(targets) - i):.5f} " if i < len(targets) - 1
             else "") + f"-p tcp -m comment --comment {names[i]} -j DNAT --to-destination {target}"
            for i, target in enumerate(targets)
        ]
        if not targets:
            refuse.append(f'{match} -m comment --comment "{service} has no ready replica" '
                          f"-j REJECT --reject-with tcp-reset")
    return {net.chain: dispatch, **chains}, {net.no_endpoints_chain: refuse}


def apply(spec: LabSpec, ready: Ready) -> None:
    nat, filter_ = rules(spec, ready)
    iptables.replace("nat", nat)
    iptables.replace("filter", filter_)


def probe(spec: LabSpec, pool: ThreadPoolExecutor) -> dict[str, bool]:
    """Each replica's readiness, asked now (all at once): {replica: answered 200}."""
    replicas = [(s, n, name) for s in SERVICES for n, name in enumerate(spec.replica_names(s), start=1)]
    urls = [f"{spec.url(spec.ports.admin_port(s, n), spec.replica_host(s, n))}/health/ready" for s, n, _ in replicas]
    answers = list(pool.map(lambda u: http_ok(u, timeout_s=PROBE_TIMEOUT_S), urls))
    return {name: ok for (_, _, name), ok in zip(replicas, answers, strict=True)}


def _log(message: str, **fields: Any) -> None:
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "message": message, **fields}),
          flush=True)


class Controller:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.ready: Ready | None = None
        self.failures: dict[str, int] = {}  # consecutive failed probes per replica
        self.updated_at = 0.0
        self.installed = False
        self.lock = threading.Lock()

    def view(self) -> dict[str, Any]:
        spec = load_spec(self.state_dir)
        with self.lock:
            ready = dict(self.ready or {})
        return {"updated_at": self.updated_at, "services": {
            s: {"address": spec.net.service_address(s), "port": spec.ports.service_port(s), "ready": ready.get(s, [])}
            for s in SERVICES}}

    def round(self, pool: ThreadPoolExecutor) -> None:
        spec = load_spec(self.state_dir)
        if not self.installed:
            install_chains(spec.net)  # idempotent: after a restart of this program they are there already
            self.installed = True
        answers = probe(spec, pool)
        for name, ok in answers.items():
            self.failures[name] = 0 if ok else self.failures.get(name, FAILURE_THRESHOLD - 1) + 1
        # a replica seen for the first time is in once it answers (failures start one short of the threshold)
        ready: Ready = {s: [n for n in spec.replica_names(s) if self.failures.get(n, FAILURE_THRESHOLD) <
                            FAILURE_THRESHOLD] for s in SERVICES}
        if ready != self.ready:
            apply(spec, ready)
            if self.ready is not None:
                changed = {s: ready[s] for s in SERVICES if ready[s] != self.ready.get(s)}
                _log("endpoints changed", ready=changed)
            with self.lock:
                self.ready = ready
            self.updated_at = time.time()
        self._reap(spec)

    def _reap(self, spec: LabSpec) -> None:
        from chaoslab.kernel import store  # the kernel faults; the network above does not need them

        try:
            for record in store.reap(spec):
                _log("fault expired and removed", fault=record.id, kind=record.kind, target=record.target)
        except Exception as exc:  # noqa: BLE001 - keep serving the endpoints; say why, try again next round
            _log("reaping expired faults failed", error=repr(exc))

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=16) as pool:
            while True:
                started = time.monotonic()
                try:
                    self.round(pool)
                except Exception as exc:  # noqa: BLE001 - a bad round must not end the controller
                    _log("round failed", error=repr(exc))
                time.sleep(max(0.0, PERIOD_S - (time.monotonic() - started)))


def serve(controller: Controller, port: int) -> ThreadingHTTPServer:
    return status_server.serve(port, {"/health": status_server.health(lambda: controller.ready is not None),
                                      "/endpoints": lambda: (controller.view(), 200)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaoslab.lab.endpoints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    spec = load_spec(args.state_dir)
    if not spec.isolated:
        print("the endpoints controller serves isolated labs only", file=sys.stderr)
        return 2
    controller = Controller(args.state_dir)
    serve(controller, spec.ports.endpoints)
    _log("started", subnet=str(spec.net.subnet))
    controller.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
