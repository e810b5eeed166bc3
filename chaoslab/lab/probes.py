"""Readiness probes: does a port accept, does a URL answer 200, is each replica ready, does the broker serve; and
poll(), the one way the lab's tools wait for something to become true."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def tcp_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            resp.read(1 << 16)
            return resp.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def all_ok(urls: list[str], timeout_s: float = 2.0) -> dict[str, bool]:
    """Probe many URLs at once."""
    if not urls:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return dict(zip(urls, pool.map(lambda u: http_ok(u, timeout_s), urls), strict=True))


def ready_replicas(registry: dict[str, Any], service: str) -> dict[str, bool]:
    """Each replica's own readiness (its /health/ready), asked now."""
    replicas = registry["services"].get(service, {}).get("replicas", [])
    return {r["name"]: http_ok(f"{r['admin_url']}/health/ready", timeout_s=1.5) for r in replicas}


def all_ready(registry: dict[str, Any]) -> bool:
    """Every replica of every service ready."""
    return all(all(ready_replicas(registry, s).values()) for s in registry["services"])


def broker_serving(registry: dict[str, Any]) -> bool:
    """The broker takes AMQP connections and serves its metrics (the Erlang VM alone is not enough)."""
    amqp = urlsplit(registry["broker"]["amqp_url"])
    return (tcp_accepts(amqp.port or 5672, host=amqp.hostname or "127.0.0.1")
            and http_ok(registry["broker"]["metrics_url"], timeout_s=2.0))


def poll(check: Callable[[], T], timeout_s: float, interval_s: float = 0.5) -> tuple[T | None, float]:
    """Call `check()` until it returns something truthy: (that value, seconds waited), or (None, seconds waited)
    once `timeout_s` passed."""
    started = time.monotonic()
    while True:
        value = check()
        waited = time.monotonic() - started
        if value:
            return value, waited
        if waited > timeout_s:
            return None, waited
        time.sleep(interval_s)
