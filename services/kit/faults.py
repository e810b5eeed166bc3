"""Injected faults, per replica: latency, errors, connection aborts and CPU burn, each with a time-to-live
so that a crashed experiment cannot leave one behind. Set through the token-protected admin API."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, model_validator

from services.kit import metrics
from services.kit.errors import ApiError, problem_response
from services.kit.validation import StrictModel, parse_body

KINDS = ("latency", "error", "abort", "cpu")
MAX_TTL_S = 3600


class FaultSpec(StrictModel):
    kind: Literal["latency", "error", "abort", "cpu"]
    ttl_s: float = Field(60.0, gt=0, le=MAX_TTL_S)
    percent: float = Field(100.0, ge=0, le=100)
    route: str | None = Field(None, max_length=200, description="route template (or gRPC method) only")
    upstream: str | None = Field(None, max_length=100, description="calls to this upstream only")
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    jitter_ms: float = Field(0.0, ge=0, le=60_000)
    status: int = Field(503, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.kind == "latency" and self.latency_ms <= 0:
            raise ValueError("a latency fault needs latency_ms > 0")
        if self.kind == "cpu" and (self.route or self.upstream):
            raise ValueError("a cpu fault applies to the whole replica: no route or upstream")
        return self


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


class InjectedAbort(ConnectionError):
    """An injected connection abort on a call to an upstream."""


async def apply_to_call(registry: FaultRegistry, upstream: str) -> None:
    """Apply an upstream fault before an outgoing call: delay it, or fail it as the upstream would."""
    fault = registry.pick(upstream=upstream)
    if fault is None:
        return
    spec = fault.spec
    if spec.kind == "latency":
        await asyncio.sleep(fault_delay_s(spec))
    elif spec.kind == "abort":
        raise InjectedAbort(f"injected abort of the call to {upstream}")
    elif spec.kind == "error":
        raise ApiError(spec.status, "Injected Fault", f"injected error on the call to {upstream}")


def fault_middleware(registry: FaultRegistry) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        fault = registry.pick(route=route)
        if fault is not None:
            spec = fault.spec
            if spec.kind == "latency":
                await asyncio.sleep(fault_delay_s(spec))
            elif spec.kind == "error":
                return problem_response(spec.status, "Injected Fault", f"fault {fault.id} is active")
            elif spec.kind == "abort":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
        return await handler(request)

    return middleware


def grpc_fault_interceptor(registry: FaultRegistry) -> Any:
    """A grpc.aio server interceptor applying this replica's faults to unary-unary calls."""
    import grpc

    from services.kit.grpc_handlers import with_unary_behaviour

    class FaultInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = await continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            inner = handler.unary_unary

            async def wrapped(request: Any, context: Any) -> Any:
                fault = registry.pick(route=details.method)
                if fault is not None:
                    spec = fault.spec
                    if spec.kind == "latency":
                        await asyncio.sleep(fault_delay_s(spec))
                    elif spec.kind == "error":
                        await context.abort(grpc.StatusCode.UNAVAILABLE if spec.status == 503
                                            else grpc.StatusCode.INTERNAL, f"fault {fault.id} is active")
                    elif spec.kind == "abort":
                        await context.abort(grpc.StatusCode.UNAVAILABLE, "injected connection abort")
                return await inner(request, context)

            return with_unary_behaviour(handler, wrapped)

    return FaultInterceptor()


def admin_token_middleware(token: str) -> Any:
    """Every /admin/* route needs the admin token (constant-time comparison: no timing oracle)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/admin"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return problem_response(401, "Unauthorized", "the admin API needs the admin bearer token",
                                        headers={"WWW-Authenticate": 'Bearer realm="chaoslab-admin"'})
        return await handler(request)

    return middleware


CRASH_EXIT_CODE = 137  # what a SIGKILLed process reports (128 + 9)
CRASH_DELAY_S = 0.1


def add_admin_routes(app: web.Application, registry: FaultRegistry) -> None:
    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response({"faults": [f.as_dict() for f in registry.active()]})

    async def add_fault(request: web.Request) -> web.Response:
        spec = await parse_body(request, FaultSpec)
        fault = registry.add(spec)
        return web.json_response(fault.as_dict(), status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        return web.json_response({"cleared": registry.clear()})

    async def clear_fault(request: web.Request) -> web.Response:
        if not registry.remove(request.match_info["fault_id"]):
            raise ApiError(404, "Not Found", "no such fault (it may have expired)")
        return web.json_response({"cleared": 1})

    async def crash(request: web.Request) -> web.Response:
        # A crash from inside, for runners without process control (the compose chaos runner has no Docker
        # socket): os._exit skips every shutdown hook, like SIGKILL, and works for PID 1 in a container, where
        # a self-sent SIGKILL is ignored. The container's restart policy brings the replica back.
        body = await request.json() if request.can_read_body else {}
        delay_s = body.get("delay_s", CRASH_DELAY_S) if isinstance(body, dict) else None
        if not isinstance(delay_s, int | float) or isinstance(delay_s, bool) or not 0 <= delay_s <= 60:
            raise ApiError(422, "Unprocessable Content", "delay_s must be a number of seconds from 0 to 60",
                           errors=[{"field": "delay_s", "message": "0..60", "type": "value"}])
        logging.getLogger("chaoslab.crash").warning("crash requested through the admin API; exiting %d in %.2f s",
                                                    CRASH_EXIT_CODE, delay_s)
        # The answer goes out first; then the process ends mid-flight, whatever it was doing.
        asyncio.get_running_loop().call_later(max(float(delay_s), 0.05), os._exit, CRASH_EXIT_CODE)
        return web.json_response({"pid": os.getpid(), "exit_code": CRASH_EXIT_CODE, "in_s": delay_s}, status=202)

    app.router.add_post("/admin/crash", crash)
    app.router.add_get("/admin/faults", list_faults)
    app.router.add_post("/admin/faults", add_fault)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_delete("/admin/faults/{fault_id}", clear_fault)


__all__ = ["FaultRegistry", "FaultSpec", "Fault", "apply_to_call", "fault_middleware", "grpc_fault_interceptor",
           "admin_token_middleware", "add_admin_routes", "InjectedAbort"]
