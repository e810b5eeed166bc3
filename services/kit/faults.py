"""Injected faults, per replica: latency, errors, connection aborts and CPU burn, each with a time-to-live
so that a crashed experiment cannot leave one behind. Set through the token-protected admin API (admin.py).

One function decides and applies a fault, `apply_fault`: the HTTP server middleware (http_server.py), the gRPC
server interceptor (grpc_server.py) and both outgoing clients (resilience.py) call it, and each only maps an
injected error or abort onto its protocol."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from services.contract import FAULT_KINDS as KINDS
from services.contract import FaultSpec
from services.kit import metrics


@dataclass
class Fault:
    spec: FaultSpec
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)

    @property
    def expires_at(self) -> float:
        return self.created_at + self.spec.ttl_s

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec.model_dump(), "created_at": self.created_at,
                "expires_at": self.expires_at, "remaining_s": round(max(0.0, self.expires_at - time.time()), 3)}


# While a CPU burn runs, the interpreter hands the GIL over every BURN_SLICE_S instead of every 5 ms. Each time
# the event loop wakes up it then waits about one slice behind the burner, as behind a hot code path, so the
# slowdown is counted in slices per request (a structural number) more than in how fast the machine is. With 5 ms
# slices a burn slowed orders to 0.3-0.58 s, right at its 0.5 s latency SLO, and whether the alert fired depended
# on the machine's speed that day; with 7 ms, on the same machine at the chaos tests' 5 orders/s, 0.7-1.4 s:
# over the SLO with margin and well under the gateway's 3 s timeout.
BURN_SLICE_S = 0.007


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._burners: dict[str, threading.Event] = {}
        self._burn_lock = threading.Lock()
        self._running_burns = 0
        self._normal_slice_s = sys.getswitchinterval()

    def active(self) -> list[Fault]:
        now = time.time()
        expired = [fid for fid, f in self._faults.items() if f.expires_at <= now]
        for fid in expired:
            self.remove(fid)
        return list(self._faults.values())

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(spec)
        self._faults[fault.id] = fault
        if spec.kind == "cpu":
            self._start_burn(fault)
        self._export()
        return fault

    def remove(self, fault_id: str) -> bool:
        fault = self._faults.pop(fault_id, None)
        stop = self._burners.pop(fault_id, None)
        if stop:
            stop.set()
        self._export()
        return fault is not None

    def clear(self) -> int:
        ids = list(self._faults)
        for fid in ids:
            self.remove(fid)
        return len(ids)

    def pick(self, *, route: str | None = None, upstream: str | None = None) -> Fault | None:
        """The fault to apply to this call, if any: request faults match on route, call faults on upstream."""
        if not self._faults:
            return None
        for fault in self.active():
            spec = fault.spec
            if spec.kind == "cpu" or (spec.upstream or None) != upstream:
                continue
            if spec.route and spec.route != route:
                continue
            if random.uniform(0, 100) < spec.percent:
                return fault
        return None

    def _export(self) -> None:
        for kind in KINDS:
            metrics.fault_active.labels(kind).set(sum(1 for f in self._faults.values() if f.spec.kind == kind))

    def _start_burn(self, fault: Fault) -> None:
        # A thread that holds the GIL for `percent` of every 100 ms slows this replica's event loop the way
        # a CPU-hungry neighbour or a hot code path would.
        stop = threading.Event()
        self._burners[fault.id] = stop
        duty = fault.spec.percent / 100.0

        def burn() -> None:
            self._burn_started()
            try:
                while not stop.is_set() and time.time() < fault.expires_at:
                    start = time.perf_counter()
                    while time.perf_counter() - start < 0.1 * duty:
                        pass
                    stop.wait(0.1 * (1 - duty))
            finally:
                self._burn_ended()

        threading.Thread(target=burn, name=f"cpu-burn-{fault.id}", daemon=True).start()

    def _burn_started(self) -> None:
        with self._burn_lock:
            if self._running_burns == 0:
                self._normal_slice_s = sys.getswitchinterval()
                sys.setswitchinterval(BURN_SLICE_S)
            self._running_burns += 1

    def _burn_ended(self) -> None:
        with self._burn_lock:
            self._running_burns -= 1
            if self._running_burns == 0:
                sys.setswitchinterval(self._normal_slice_s)


def fault_delay_s(spec: FaultSpec) -> float:
    return max(0.0, spec.latency_ms + random.uniform(-spec.jitter_ms, spec.jitter_ms)) / 1000.0


class InjectedFault(Exception):
    """A fault `apply_fault` decided to inject here; its caller maps it onto its protocol."""

    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


class InjectedError(InjectedFault):
    """An injected error: a problem answer with the fault's status, a gRPC status, or a failed call."""

    @property
    def status(self) -> int:
        return self.fault.spec.status


class InjectedAbort(InjectedFault, ConnectionError):
    """An injected connection abort: the connection dropped, a gRPC UNAVAILABLE, or an unreachable upstream."""


async def apply_fault(registry: FaultRegistry, *, route: str | None = None, upstream: str | None = None) -> None:
    """Apply the fault this request (`route`: its route template or gRPC method) or this outgoing call (`upstream`)
    draws, if any: a latency fault delays it here; an error or abort fault raises InjectedError or InjectedAbort."""
    fault = registry.pick(route=route, upstream=upstream)
    if fault is None:
        return
    spec = fault.spec
    if spec.kind == "latency":
        await asyncio.sleep(fault_delay_s(spec))
    elif upstream is not None:
        if spec.kind == "error":
            raise InjectedError(fault, f"injected error on the call to {upstream}")
        raise InjectedAbort(fault, f"injected abort of the call to {upstream}")
    elif spec.kind == "error":
        raise InjectedError(fault, f"fault {fault.id} is active")
    else:
        raise InjectedAbort(fault, "injected connection abort")


__all__ = ["FaultRegistry", "FaultSpec", "Fault", "apply_fault", "InjectedFault", "InjectedError", "InjectedAbort",
           "fault_delay_s", "BURN_SLICE_S"]
