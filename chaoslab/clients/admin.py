"""Every replica's admin API (docs/design.md, "Admin API"): faults, crash, audit, with the lab's admin token
(AdminClient); liveness and metrics, which need no token (the functions `live` and `metrics_text`).

A replica is the registry's record of it: {"name", "admin_url", ...}. Calls to several replicas fan out over a
thread pool, so that a fault lands on all of them at nearly the same moment and callers stay synchronous (Chaos
Toolkit never awaits a coroutine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests

from chaoslab.errors import ClientError
from services.contract import FaultSpec

TIMEOUT_S = 5.0
AUDIT_TIMEOUT_S = 15.0
FAULT_FIELDS = tuple(FaultSpec.model_fields)  # the admin API's own request model

Replica = dict[str, Any]
T = TypeVar("T")


def fault_body(kind: str, **fields: Any) -> dict[str, Any]:
    """The POST /admin/faults body: unset (None) fields are left to the kit's defaults."""
    body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
    unknown = set(body) - set(FAULT_FIELDS)
    if unknown:
        raise ClientError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    return body


def replicas_of(registry: dict[str, Any], services: list[str] | None = None) -> list[Replica]:
    """Every replica of the named services (of every service without names), from a lab registry."""
    wanted = services or list(registry["services"])
    return [r for s in wanted for r in registry["services"].get(s, {}).get("replicas", [])]


def direct_session() -> requests.Session:
    """A session that goes straight to the replicas: a proxy from the environment would answer for a replica that
    is gone."""
    session = requests.Session()
    session.trust_env = False
    return session


def live(replica: Replica, session: requests.Session | None = None, *, timeout_s: float = TIMEOUT_S) -> bool:
    """True while the replica's own process answers GET /health/live with 200. Any other outcome (refused, reset,
    no answer in time, an error status from something in between) means the process is not there to answer.
    Without `session`, one of `direct_session` for this call."""
    if session is None:
        with direct_session() as own:
            return live(replica, own, timeout_s=timeout_s)
    try:
        return session.get(f"{replica['admin_url']}/health/live", timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def metrics_text(replica: Replica, *, timeout_s: float = TIMEOUT_S) -> str:
    """GET /metrics of one replica: its Prometheus exposition text. ClientError when it does not answer 200."""
    try:
        resp = requests.get(f"{replica['admin_url']}/metrics", timeout=timeout_s)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise ClientError(f"metrics of {replica['name']}: {exc.__class__.__name__}") from None
    return resp.text


def _fan_out(targets: list[Replica], call: Callable[[Replica], T]) -> list[T]:
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        return list(pool.map(call, targets))


class AdminClient:
    def __init__(self, token: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout_s = timeout_s

    @classmethod
    def of(cls, registry: dict[str, Any]) -> AdminClient:
        return cls(str(registry["admin_token"]))

    def _request(self, method: str, replica: Replica, path: str, *, timeout_s: float | None = None,
                 **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{replica['admin_url']}{path}", headers=self._headers,
                                timeout=timeout_s or self.timeout_s, **kwargs)

    def add_fault(self, targets: list[Replica], body: dict[str, Any]) -> list[dict[str, Any]]:
        """Inject one fault on each target; all or nothing: when any replica refuses it, the ones that took it
        clear it again and ClientError names who refused and why."""

        def post(replica: Replica) -> dict[str, Any]:
            try:
                resp = self._request("POST", replica, "/admin/faults", json=body)
            except requests.RequestException as exc:
                return {"replica": replica["name"], "error": f"unreachable: {exc.__class__.__name__}"}
            if resp.status_code != 201:
                return {"replica": replica["name"], "error": f"{resp.status_code} {resp.text[:300]}"}
            return {"replica": replica["name"], **resp.json()}

        results = _fan_out(targets, post)
        failed = [r for r in results if "error" in r]
        if failed:
            refused = {f["replica"] for f in failed}
            self.clear_faults([t for t in targets if t["name"] not in refused])
            raise ClientError("fault refused: " + "; ".join(f"{f['replica']}: {f['error']}" for f in failed))
        return results

    def list_faults(self, targets: list[Replica]) -> list[dict[str, Any]]:
        """Each target's active faults: {"replica", "faults": [...]}, or {"replica", "error"} when unreachable."""

        def get(replica: Replica) -> dict[str, Any]:
            try:
                resp = self._request("GET", replica, "/admin/faults")
                resp.raise_for_status()
                return {"replica": replica["name"], "faults": list(resp.json().get("faults", []))}
            except (requests.RequestException, ValueError) as exc:
                return {"replica": replica["name"], "error": exc.__class__.__name__}

        return _fan_out(targets, get)

    def clear_faults(self, targets: list[Replica]) -> list[dict[str, Any]]:
        """DELETE /admin/faults on each target: {"replica", "cleared"} (+ "error"). An unreachable replica has no
        fault to clear (a restarted process starts with none), so it is reported, not raised: a rollback must get
        through a killed replica."""

        def delete(replica: Replica) -> dict[str, Any]:
            try:
                resp = self._request("DELETE", replica, "/admin/faults")
                resp.raise_for_status()
                return {"replica": replica["name"], "cleared": int(resp.json().get("cleared", 0))}
            except (requests.RequestException, ValueError) as exc:
                return {"replica": replica["name"], "cleared": 0, "error": exc.__class__.__name__}

        return _fan_out(targets, delete)

    def crash(self, targets: list[Replica]) -> list[dict[str, Any]]:
        """POST /admin/crash on each target: its process exits 137 at once (how a runner without process control
        kills a replica; a restart policy brings it back). ClientError when a target refuses."""

        def post(replica: Replica) -> dict[str, Any]:
            try:
                resp = self._request("POST", replica, "/admin/crash", json={})
            except requests.RequestException as exc:
                return {"name": replica["name"], "error": f"unreachable: {exc.__class__.__name__}"}
            if resp.status_code != 202:
                return {"name": replica["name"], "error": f"{resp.status_code} {resp.text[:300]}"}
            return {"name": replica["name"], "pid": int(resp.json().get("pid", 0)), "signal": "exit 137",
                    "at": time.time()}

        results = _fan_out(targets, post)
        failed = [r for r in results if "error" in r]
        if failed:
            raise ClientError("crash refused: " + "; ".join(f"{f['name']}: {f['error']}" for f in failed))
        return results

    def audit(self, replica: Replica) -> dict[str, Any]:
        """GET /admin/audit of one replica: its service's own view for the data audit."""
        try:
            resp = self._request("GET", replica, "/admin/audit", timeout_s=AUDIT_TIMEOUT_S)
            resp.raise_for_status()
            return dict(resp.json())
        except (requests.RequestException, ValueError) as exc:
            raise ClientError(f"audit of {replica['name']}: {exc}") from None

    def service_audit(self, registry: dict[str, Any], service: str) -> dict[str, Any]:
        """A service's audit from the first replica that answers (the replicas share their service's data)."""
        failures = []
        for replica in replicas_of(registry, [service]):
            try:
                return self.audit(replica)
            except ClientError as exc:
                failures.append(str(exc))
        raise ClientError("; ".join(failures) or f"{service} has no replica to audit")
