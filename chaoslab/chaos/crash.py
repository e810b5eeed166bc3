"""Killing a replica through its own admin API (the compose runner's kill: POST /admin/crash), and knowing when it
is really gone.

The crash is answered first and the process exits a moment later (services/kit/admin.py: the answer must get
out), so the answer is not the fault: a recovery measured from it started while the replica still served, and
its first poll could count the doomed replica as ready (time_to_recover read 0.01 s in the container test). Here
the kill returns once each target stops answering its liveness endpoint, and each one's `at` is the moment it was
first seen gone, which is when the fault took effect.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaoslab.clients.admin import AdminClient, Replica, direct_session, live
from chaoslab.errors import LabError

# A crashed replica exits within a fraction of a second of its answer; a busy machine may take a few.
GONE_WITHIN_S = 10.0
POLL_S = 0.05
# One liveness check: a stopped container's address can swallow the SYN (no answer at all) instead of refusing.
CHECK_TIMEOUT_S = 0.5


def wait_gone(targets: list[Replica], timeout_s: float = GONE_WITHIN_S) -> list[dict[str, Any]]:
    """Wait until every target stops answering: [{"name", "at" (unix time first seen gone), "gone_after_s"}].
    LabError naming the ones that still answer after `timeout_s`."""

    def watch(replica: Replica) -> dict[str, Any]:
        started = time.monotonic()
        with direct_session() as session:  # no proxy from the environment: it would answer for a gone replica
            while live(replica, session, timeout_s=CHECK_TIMEOUT_S):
                if time.monotonic() - started >= timeout_s:
                    return {"name": replica["name"], "error": f"still answers after {timeout_s:g} s"}
                time.sleep(POLL_S)
        return {"name": replica["name"], "at": time.time(), "gone_after_s": round(time.monotonic() - started, 3)}

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:  # all watched at once: each `at` is exact
        results = list(pool.map(watch, targets))
    alive = [r for r in results if "error" in r]
    if alive:
        raise LabError("a killed replica did not go down: " + "; ".join(f"{r['name']} {r['error']}" for r in alive))
    return results


def crash(admin: AdminClient, targets: list[Replica], timeout_s: float = GONE_WITHIN_S) -> list[dict[str, Any]]:
    """Crash each target through its admin API and return once all are gone: the crash's answer ("name", "pid",
    "signal") with "at" the moment the replica was seen gone and "gone_after_s" since its answer."""
    answered = admin.crash(targets)
    gone = {g["name"]: g for g in wait_gone(targets, timeout_s)}
    return [{**a, "at": gone[a["name"]]["at"], "gone_after_s": gone[a["name"]]["gone_after_s"]} for a in answered]
