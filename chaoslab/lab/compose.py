"""The registry of a compose stack, found the way Prometheus finds it: by DNS (docs/deploy.md, "Chaos in compose").

Inside the compose network a service's name resolves to one address per replica (`--scale payments=3` gives
three), and every replica serves the container contract: HTTP on 8080, admin API on 9090. So the chaos runner
builds, at each activity, the same registry a native lab writes to STATE/registry.json, with `"mode": "compose"`:
replicas are `<service>-<n>` in address order, and a service that resolves to nothing has no replicas (stopped).

What the compose runner cannot do: stop, start or pause containers. It has no Docker socket, on purpose (the
socket is root on the host). A replica is killed through its own admin API (POST /admin/crash: the process exits
137 at once and the restart policy brings it back); experiments that stop a service or the broker run natively
or on Kubernetes (chaos/k8s/).

Settings (environment, with their defaults; compose sets them on the chaos-runner service):
  CHAOSLAB_TARGET=compose          selects this registry (the default is the native lab's registry.json)
  ADMIN_TOKEN                      the replicas' admin token (required)
  AMQP_URL                         the broker, as the services use it (required for the broker probes)
  CHAOSLAB_HTTP_PORT=8080          CHAOSLAB_ADMIN_PORT=9090
  CHAOSLAB_GATEWAY_URL=http://gateway:8080
  CHAOSLAB_PAYMENTS_GRPC_ADDR=payments:50051
  PROMETHEUS_URL=http://prometheus:9090        ALERTMANAGER_URL=http://alertmanager:9093
  RABBITMQ_METRICS_URL=http://rabbitmq:15692/metrics
  CHAOSLAB_WEBHOOK_URL=http://127.0.0.1:9095   (the runner hosts the Alertmanager webhook receiver)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from chaoslab.errors import LabError
from services import contract

MODE = "compose"
TARGET_ENV = "CHAOSLAB_TARGET"

Resolver = Callable[[str, int], list[str]]


def dns_addresses(host: str, port: int) -> list[str]:
    """Every IPv4 address `host` resolves to (one per replica in a compose network)."""
    try:
        infos = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []  # a stopped (or scaled to 0) service has no name in the network
    return [str(info[4][0]) for info in infos]


def _setting(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise LabError(f"{name} is not set: the compose chaos runner needs it (see compose/.env.example)")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise LabError(f"{name} must be a port number, not {raw!r}") from None
    if not 0 < port < 65536:
        raise LabError(f"{name} must be a port number, not {raw!r}")
    return port


def compose_registry(env: Mapping[str, str] | None = None, resolve: Resolver | None = None) -> dict[str, Any]:
    """The registry of the compose stack as it is now (replicas found by `resolve`, DNS by default)."""
    env = os.environ if env is None else env
    resolve = resolve or dns_addresses
    http_port = _port(env, "CHAOSLAB_HTTP_PORT", contract.CONTAINER_HTTP_PORT)
    admin_port = _port(env, "CHAOSLAB_ADMIN_PORT", contract.CONTAINER_ADMIN_PORT)
    services: dict[str, Any] = {}
    for service in contract.SERVICE_NAMES:
        # replica numbers follow address order, so that `payments-2` is the same container from one call to the next
        addresses = sorted(set(resolve(service, admin_port)), key=ipaddress.ip_address)
        entry: dict[str, Any] = {"url": None if service in contract.GRPC_SERVICES else f"http://{service}:{http_port}"}
        if service in contract.GRPC_SERVICES:
            entry["grpc_addr"] = env.get("CHAOSLAB_PAYMENTS_GRPC_ADDR", f"{service}:{contract.CONTAINER_GRPC_PORT}")
        entry["replicas"] = [
            {
                "name": f"{service}-{n}",
                "address": address,
                "admin_url": f"http://{address}:{admin_port}",
                "pid": 0,  # in another container: not ours to see
                "state": "RUNNING",  # it resolves, so its container runs (the health check is its readiness)
            }
            for n, address in enumerate(addresses, start=1)
        ]
        services[service] = entry
    return {
        "mode": MODE,
        "admin_token": _setting(env, "ADMIN_TOKEN"),
        "gateway_url": env.get("CHAOSLAB_GATEWAY_URL", f"http://gateway:{http_port}"),
        "services": services,
        "broker": {
            "amqp_url": env.get("AMQP_URL", ""),
            "metrics_url": env.get("RABBITMQ_METRICS_URL", "http://rabbitmq:15692/metrics"),
            "node": "rabbitmq",
        },
        "prometheus_url": env.get("PROMETHEUS_URL", "http://prometheus:9090"),
        "alertmanager_url": env.get("ALERTMANAGER_URL", "http://alertmanager:9093"),
        "webhook_url": env.get("CHAOSLAB_WEBHOOK_URL", "http://127.0.0.1:9095"),
        "processes": [],
    }


def is_compose(reg: Mapping[str, Any]) -> bool:
    return reg.get("mode") == MODE


def needs_process_control(what: str) -> LabError:
    """The error for a fault that needs to stop, start or pause containers."""
    return LabError(
        f"{what} needs container control, which the compose chaos runner does not have (no Docker socket is "
        "mounted, on purpose). Run this experiment natively (`chaoslab chaos run`) or on Kubernetes (chaos/k8s/); "
        "in compose, kill_replica and the admin-API faults work."
    )
