"""A client of every replica's admin API (docs/design.md, "Admin API"): faults and audits.

Calls fan out over a thread pool: the activities stay synchronous (Chaos Toolkit never awaits a coroutine)
and a fault lands on all replicas at nearly the same moment.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos.registry import admin_token

TIMEOUT_S = 5.0
FAULT_FIELDS = ("kind", "ttl_s", "percent", "route", "upstream", "latency_ms", "jitter_ms", "status")


def _headers(reg: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(reg)}"}


def fault_body(kind: str, **fields: Any) -> dict[str, Any]:
    """The POST /admin/faults body: unset (None) fields are left to the kit's defaults."""
    body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
    unknown = set(body) - set(FAULT_FIELDS)
    if unknown:
        raise ActivityFailed(f"unknown fault fields: {', '.join(sorted(unknown))}")
    return body


def _fan_out(targets: list[dict[str, Any]], call: Any) -> list[Any]:
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        return list(pool.map(call, targets))


def add_fault(reg: dict[str, Any], targets: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """Inject one fault on each target replica; ActivityFailed when any replica refuses it."""

    def post(replica: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = requests.post(f"{replica['admin_url']}/admin/faults", json=body, headers=_headers(reg),
                                 timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            return {"replica": replica["name"], "error": f"unreachable: {exc.__class__.__name__}"}
        if resp.status_code != 201:
            return {"replica": replica["name"], "error": f"{resp.status_code} {resp.text[:300]}"}
        return {"replica": replica["name"], **resp.json()}

    results = _fan_out(targets, post)
    failed = [r for r in results if "error" in r]
    if failed:
        # Leave nothing half-injected behind: the replicas that took it clear it again.
        clear_faults(reg, [t for t in targets if t["name"] not in {f["replica"] for f in failed}])
        raise ActivityFailed("fault refused: " + "; ".join(f"{f['replica']}: {f['error']}" for f in failed))
    return results


def crash(reg: dict[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST /admin/crash on each target: the replica's process exits 137 at once (how the compose runner
    kills a replica; its restart policy brings it back). ActivityFailed when a target refuses."""

    def post(replica: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = requests.post(f"{replica['admin_url']}/admin/crash", json={}, headers=_headers(reg),
                                 timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            return {"name": replica["name"], "error": f"unreachable: {exc.__class__.__name__}"}
        if resp.status_code != 202:
            return {"name": replica["name"], "error": f"{resp.status_code} {resp.text[:300]}"}
        return {"name": replica["name"], "pid": int(resp.json().get("pid", 0)), "signal": "exit 137",
                "at": time.time()}

    results = _fan_out(targets, post)
    failed = [r for r in results if "error" in r]
    if failed:
        raise ActivityFailed("crash refused: " + "; ".join(f"{f['name']}: {f['error']}" for f in failed))
    return results


def list_faults(reg: dict[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's active faults: {"replica", "faults": [...]} or {"replica", "error"} when unreachable."""

    def get(replica: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = requests.get(f"{replica['admin_url']}/admin/faults", headers=_headers(reg), timeout=TIMEOUT_S)
            resp.raise_for_status()
            return {"replica": replica["name"], "faults": list(resp.json().get("faults", []))}
        except (requests.RequestException, ValueError) as exc:
            return {"replica": replica["name"], "error": exc.__class__.__name__}

    return _fan_out(targets, get)


def clear_faults(reg: dict[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DELETE /admin/faults on each target. An unreachable replica has no faults to clear (a restarted
    process starts with none), so it is reported, not raised: a rollback must get through a killed replica."""

    def delete(replica: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = requests.delete(f"{replica['admin_url']}/admin/faults", headers=_headers(reg),
                                   timeout=TIMEOUT_S)
            resp.raise_for_status()
            return {"replica": replica["name"], "cleared": int(resp.json().get("cleared", 0))}
        except (requests.RequestException, ValueError) as exc:
            return {"replica": replica["name"], "cleared": 0, "error": exc.__class__.__name__}

    return _fan_out(targets, delete)


def audit(reg: dict[str, Any], replica: dict[str, Any]) -> dict[str, Any]:
    """GET /admin/audit of one replica."""
    try:
        resp = requests.get(f"{replica['admin_url']}/admin/audit", headers=_headers(reg), timeout=15)
        resp.raise_for_status()
        return dict(resp.json())
    except (requests.RequestException, ValueError) as exc:
        raise ActivityFailed(f"audit of {replica['name']}: {exc}") from None


def all_replicas(reg: dict[str, Any], services: list[str] | None = None) -> list[dict[str, Any]]:
    wanted = services or list(reg["services"])
    return [r for s in wanted for r in reg["services"].get(s, {}).get("replicas", [])]
