"""The admin port of every replica: health, metrics, and the token-protected admin API (faults, crash).

It serves operators and probes, not the shop's users: no tracing middleware, and its handlers run untraced. A
service adds its own admin routes (orders' /admin/audit) to `svc.admin` the same way, before the replica starts.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from services.contract import GATEWAY
from services.kit import metrics as kit_metrics
from services.kit.errors import ApiError, error_middleware, problem_response
from services.kit.faults import FaultRegistry, FaultSpec
from services.kit.health import Health
from services.kit.tracing import untraced
from services.kit.validation import parse_body, read_json

FAULTS = web.AppKey("faults", FaultRegistry)
HEALTH = web.AppKey("health", Health)

CRASH_EXIT_CODE = 137  # what a SIGKILLed process reports (128 + 9)
CRASH_DELAY_S = 0.1

routes = web.RouteTableDef()


@web.middleware
async def untraced_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The admin port serves operators and probes (health every few seconds, metrics, audits, faults), not the
    shop's users: its handlers' statements and calls would each start a one-span trace and bury the requests."""
    with untraced():
        return await handler(request)


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


def admin_app(*, token: str, faults: FaultRegistry, health: Health, log: Any) -> web.Application:
    """The admin application, its resources set: a service adds its own routes to it before the replica starts."""
    app = web.Application(middlewares=[untraced_middleware, error_middleware(log), admin_token_middleware(token)])
    app[FAULTS] = faults
    app[HEALTH] = health
    app.add_routes(routes)
    return app


# -- health and metrics (no token) --------------------------------------------------------------------------------
@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return web.json_response(request.app[HEALTH].live())


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    is_ready, body = await request.app[HEALTH].ready()
    return web.json_response(body, status=200 if is_ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    # OpenMetrics when Prometheus asks for it: only that format carries exemplars.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    health = request.app[HEALTH]
    # a module of the monolith serves its own samples (and the gateway module the process'); a service, everything
    view = kit_metrics.module_view(health.service, owns_process=health.service == GATEWAY.name)
    return web.Response(body=encoder(view), headers={"Content-Type": content_type})


# -- faults ---------------------------------------------------------------------------------------------------------
@routes.get("/admin/faults")
async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.as_dict() for f in request.app[FAULTS].active()]})


@routes.post("/admin/faults")
async def add_fault(request: web.Request) -> web.Response:
    spec = await parse_body(request, FaultSpec)
    fault = request.app[FAULTS].add(spec)
    return web.json_response(fault.as_dict(), status=201)


@routes.delete("/admin/faults")
async def clear_faults(request: web.Request) -> web.Response:
    return web.json_response({"cleared": request.app[FAULTS].clear()})


@routes.delete("/admin/faults/{fault_id}")
async def clear_fault(request: web.Request) -> web.Response:
    if not request.app[FAULTS].remove(request.match_info["fault_id"]):
        raise ApiError(404, "Not Found", "no such fault (it may have expired)")
    return web.json_response({"cleared": 1})


# -- crash ------------------------------------------------------------------------------------------------------------
@routes.post("/admin/crash")
async def crash(request: web.Request) -> web.Response:
    # A crash from inside, for runners without process control (the compose chaos runner has no Docker
    # socket): os._exit skips every shutdown step, like SIGKILL, and works for PID 1 in a container, where
    # a self-sent SIGKILL is ignored. The container's restart policy brings the replica back.
    body = await read_json(request, required=False) or {}
    delay_s = body.get("delay_s", CRASH_DELAY_S) if isinstance(body, dict) else None
    if not isinstance(delay_s, int | float) or isinstance(delay_s, bool) or not 0 <= delay_s <= 60:
        raise ApiError(422, "Unprocessable Content", "delay_s must be a number of seconds from 0 to 60",
                       errors=[{"field": "delay_s", "message": "0..60", "type": "value"}])
    logging.getLogger("chaoslab.crash").warning("crash requested through the admin API; exiting %d in %.2f s",
                                                CRASH_EXIT_CODE, delay_s)
    # The answer goes out first; then the process ends mid-flight, whatever it was doing.
    asyncio.get_running_loop().call_later(max(float(delay_s), 0.05), os._exit, CRASH_EXIT_CODE)
    return web.json_response({"pid": os.getpid(), "exit_code": CRASH_EXIT_CODE, "in_s": delay_s}, status=202)
