"""A replica's health: live while the process runs; ready once it serves and while every required check passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("health")

Check = Callable[[], Awaitable[Any]]

READY_CHECK_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class _Readiness:
    name: str
    check: Check
    required: bool


class Health:
    """The checks and the replica's phase. `serving` goes true once its lifetimes are entered and the public port
    accepts (a supervisor or a test that waits for readiness may then send traffic at once); `draining` on SIGTERM."""

    def __init__(self, service: str, replica: str) -> None:
        self.service = service
        self.replica = replica
        self.serving = False
        self.draining = False
        self._checks: list[_Readiness] = []

    def add_check(self, name: str, check: Check, required: bool = True) -> None:
        """`check` raises (or returns False) when not ready; a check that is not `required` is reported only."""
        self._checks.append(_Readiness(name, check, required))

    def live(self) -> dict[str, Any]:
        return {"status": "live", "service": self.service, "replica": self.replica}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the answer's body): every check runs, bounded, whatever the phase."""

        async def run(check: _Readiness) -> dict[str, Any]:
            try:
                result = await asyncio.wait_for(check.check(), READY_CHECK_TIMEOUT_S)
                ok = result is not False
                return {"ok": ok, "required": check.required, **({} if ok else {"error": "check failed"})}
            except Exception as exc:  # noqa: BLE001 - a readiness check reports any failure
                # The kind of failure only: its text can name a database's address or path, and readiness answers
                # anyone who reaches the admin port. The log has the whole of it.
                log.warning("readiness check failed", check=check.name, error=repr(exc)[:300])
                return {"ok": False, "required": check.required, "error": type(exc).__name__}

        results = await asyncio.gather(*(run(c) for c in self._checks))
        checks = {c.name: r for c, r in zip(self._checks, results, strict=True)}
        ready = self.serving and not self.draining and all(r["ok"] for r in results if r["required"])
        state = "draining" if self.draining else ("ready" if ready else ("not_ready" if self.serving else "starting"))
        return ready, {"status": state, "service": self.service, "replica": self.replica, "checks": checks}
