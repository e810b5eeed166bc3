"""Readiness probes: does a port accept, does a URL answer 200."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any


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


def http_json(url: str, timeout_s: float = 3.0) -> Any:
    """GET url and decode its JSON body; None when it does not answer 200 with JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, urllib.error.URLError, ValueError):
        return None


def all_ok(urls: list[str], timeout_s: float = 2.0) -> dict[str, bool]:
    """Probe many URLs at once."""
    if not urls:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return dict(zip(urls, pool.map(lambda u: http_ok(u, timeout_s), urls), strict=True))
