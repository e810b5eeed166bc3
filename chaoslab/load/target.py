"""What a load run aims at: the gateway (from the lab registry, or --host) and where its metrics go."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chaoslab.errors import LabError, LoadError
from chaoslab.lab import control
from chaoslab.lab.ports import PortPlan


@dataclass(frozen=True)
class Target:
    host: str  # the gateway's base URL
    metrics_port: int  # where the run's Prometheus exporter listens
    registry: dict[str, Any] | None  # the lab's registry when a lab runs in the state dir


def running_lab(state_dir: Path) -> dict[str, Any] | None:
    """The registry of the lab running in `state_dir`, None when there is none or it is stopped."""
    try:
        status = control.status(state_dir)
    except LabError:
        return None
    return status.registry if status.running else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LoadError(f"bad --host {url!r}: expected a URL like http://127.0.0.1:18000")
    return url.rstrip("/")


def resolve(state_dir: Path, host: str | None) -> Target:
    """The gateway to load and the exporter port: the lab's B+30 (its Prometheus scrapes it as job=locust)
    when a lab runs, else any free port."""
    registry = running_lab(state_dir)
    if host is None:
        if registry is None:
            raise LoadError(
                f"no lab is running in {state_dir} and no --host was given",
                hint="start one with `chaoslab up` (or pass --state-dir DIR of a running lab), "
                     "or aim at any deployment's gateway with --host URL",
            )
        host = str(registry["gateway_url"])
    host = check_url(host)
    if registry is None:
        return Target(host, free_port(), None)
    port = PortPlan(int(registry["base_port"])).locust
    if not port_free(port):
        raise LoadError(
            f"the lab's Locust metrics port {port} is taken: is another load run going on against this lab?",
            hint="wait for it to end, or stop it",
        )
    return Target(host, port, registry)
