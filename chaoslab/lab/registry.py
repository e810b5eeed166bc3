"""The lab registry (docs/design.md, "The lab registry"): what runs where, for people and for tests.

`chaoslab status --json` prints it; `up`, `scale` and `status` keep a copy in STATE/registry.json, and `find()`
reads it back for every tool that acts on a lab. A compose stack's registry is built by chaoslab.lab.compose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.lab.certs import operator_files
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.ports import GRPC_SERVICES, SERVICES
from chaoslab.lab.probes import all_ok, http_ok
from chaoslab.lab.programs import INFRASTRUCTURE
from chaoslab.lab.render import write_atomic
from chaoslab.lab.spec import LabSpec, load_spec
from services import contract

STOPPED = "STOPPED"


def build_registry(spec: LabSpec, processes: list[dict[str, Any]], *, probe: bool = True) -> dict[str, Any]:
    """The registry from the lab's spec and supervisord's process list (empty when supervisord is down).

    With `probe`, each replica's readiness is asked of its /health/ready, and the broker of its metrics port.
    """
    ports, url = spec.ports, spec.url
    info = {p["name"]: p for p in processes}

    def state(name: str) -> str:  # a replica's: its program's (in a monolith, the monolith replica's)
        program = spec.program_of(name)
        return str(info[program]["statename"]) if program in info else STOPPED

    def pid(name: str) -> int:
        program = spec.program_of(name)
        return int(info[program]["pid"]) if program in info else 0

    admin = {
        name: url(ports.admin_port(s, n), spec.replica_host(s, n))
        for s in SERVICES for n, name in enumerate(spec.replica_names(s), start=1)
    }
    address = {name: spec.replica_host(s, n) for s in SERVICES
               for n, name in enumerate(spec.replica_names(s), start=1)}
    running = [name for name in admin if state(name) == "RUNNING"]
    ready = all_ok([f"{admin[n]}/health/ready" for n in running]) if probe else {}

    services: dict[str, Any] = {}
    for service in SERVICES:
        host = spec.service_host(service)  # an isolated lab's service address, balanced over ready replicas
        entry: dict[str, Any] = {"address": host}
        if spec.monolith and not contract.is_edge(service):
            entry["url"] = entry["grpc_addr"] = None  # a module reached only in process: no port of its own
        elif service in GRPC_SERVICES:
            entry["url"] = None
            entry["grpc_addr"] = f"{host}:{ports.service_port(service)}"
        else:
            entry["url"] = spec.service_address(service)  # https with mutual TLS (the gateway's stays http)
        entry["replicas"] = [
            {
                "name": name,
                "address": address[name],
                "admin_url": admin[name],
                "pid": pid(name),
                "program": spec.program_of(name),  # what supervisord runs it in (process faults act on that)
                "state": state(name),
                "ready": bool(ready.get(f"{admin[name]}/health/ready", False)),
            }
            for name in spec.replica_names(service)
        ]
        services[service] = entry

    order = {name: i for i, name in enumerate([*INFRASTRUCTURE, *spec.program_names()])}  # the order they start in
    metrics_url = f"{url(ports.rabbitmq_metrics, spec.broker_host)}/metrics"
    broker_state = state("rabbitmq")
    if broker_state == "RUNNING" and probe and not http_ok(metrics_url, timeout_s=3.0):
        broker_state = "STARTING"  # the Erlang VM runs but the broker does not serve yet

    return {
        "state_dir": str(spec.paths.state),
        "base_port": spec.base_port,
        "topology": spec.topology,
        "admin_token": spec.admin_token,
        "admin_account": spec.admin_account,
        "gateway_url": url(ports.service_port("gateway"), spec.service_host("gateway")),
        "network": network_entry(spec),
        "tls": tls_entry(spec),
        "services": services,
        "broker": {
            "address": spec.broker_host,
            "amqp_url": spec.amqp_url,
            "metrics_url": metrics_url,
            "node": spec.node_name,
            "state": broker_state,
        },
        "prometheus_url": url(ports.prometheus),
        "alertmanager_url": url(ports.alertmanager),
        "webhook_url": url(ports.webhook),
        "processes": [
            {"name": p["name"], "state": p["statename"], "pid": int(p["pid"])}
            for p in sorted(processes, key=lambda p: order.get(p["name"], len(order)))
        ],
    }


def network_entry(spec: LabSpec) -> dict[str, Any]:
    """The lab's network mode and, isolated, its subnet, bridge, the host's address and the endpoints controller."""
    if not spec.isolated:
        return {"mode": spec.network}
    net = spec.net
    return {"mode": spec.network, "subnet": str(net.subnet), "bridge": net.bridge, "host_address": net.host_address,
            "endpoints_url": spec.url(spec.ports.endpoints)}


def tls_entry(spec: LabSpec) -> dict[str, Any]:
    """Whether the lab speaks mutual TLS inside and, if so, its CA, trust domain, certificate lifetime, the renewals'
    URL and the lab's tools' own certificate (the chaos extension publishes to the broker with it)."""
    if not spec.tls:
        return {"mode": "off"}
    return {"mode": "on", "trust_domain": contract.TRUST_DOMAIN, "cert_ttl_s": spec.cert_ttl_s,
            "certs_url": spec.url(spec.ports.certs), "operator": operator_files(spec)}


def write_registry(spec: LabSpec, registry: dict[str, Any]) -> None:
    write_atomic(spec.paths.registry_json, json.dumps(registry, indent=2) + "\n")


def find(state_dir: str | Path) -> dict[str, Any]:
    """The registry of the lab in `state_dir` as the last `up`, `scale` or `status` wrote it (addresses, token;
    process ids and states are as of then: ask supervisord or the replicas for live ones). A lab whose
    registry.json is missing gets one built from its lab.json, without probing. LabError when there is no lab."""
    paths = LabPaths.of(state_dir)
    try:
        return dict(json.loads(paths.registry_json.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, json.JSONDecodeError) as exc:
        raise LabError(f"cannot read the lab registry {paths.registry_json}: {exc}") from None
    return build_registry(load_spec(paths.state), [], probe=False)
