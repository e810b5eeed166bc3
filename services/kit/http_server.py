"""The public HTTP application's own middlewares: RED metrics and the one access-log line per request, and this
replica's injected faults mapped onto HTTP (the tracing and error middlewares come from tracing.py and errors.py);
and what the HTTP server answers to a request it cannot even parse."""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web, web_protocol, web_server
from aiohttp.web_request import BaseRequest

from services.kit import metrics
from services.kit.errors import problem_response
from services.kit.faults import FaultRegistry, InjectedAbort, InjectedError, apply_fault
from services.kit.tracing import current_exemplar, current_trace_ids


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def request_log_middleware(log: Any, *, measure: bool) -> Any:
    """http_server_request_duration_seconds{route, method, status_class} and in-flight (unless `measure` is off:
    the overhead benchmark's baseline, bench/overhead.py), the `X-Trace-Id` answer header, one access-log line."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        if measure:
            metrics.http_server_requests_in_flight.inc()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            trace_id, _ = current_trace_ids()
            if trace_id and not response.prepared:
                # Every answer names its trace, so a client (or a person with curl) can look it up.
                response.headers["X-Trace-Id"] = trace_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request) or "unmatched"
            if measure:
                metrics.http_server_requests_in_flight.dec()
                metrics.http_server_request_duration_seconds.labels(
                    route, request.method, metrics.status_class(status)).observe(elapsed, exemplar=current_exemplar())
            log.info("request", method=request.method, route=route, path=request.path, status=status,
                     duration_ms=round(elapsed * 1000, 2), client=request.remote)

    return middleware


def fault_middleware(registry: FaultRegistry) -> Any:
    """This replica's request faults on HTTP: an injected error answers a problem with the fault's status, an
    injected abort drops the connection without an answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            await apply_fault(registry, route=_route(request))
        except InjectedError as exc:
            return problem_response(exc.status, "Injected Fault", str(exc))
        except InjectedAbort:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None
        return await handler(request)

    return middleware


class ProblemRequestHandler(web_protocol.RequestHandler):
    """aiohttp answers a request it cannot parse (bad HTTP: a header with a NUL byte, a request line too long)
    itself, before any middleware, in text/plain, and logs the parser's exception, whose text quotes the offending
    bytes: a bearer token with them. Here that answer is a problem document like every other error of the shop, and
    the log line names the kind of error, not its text."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        structlog.get_logger("http").warning("request not served", status=status, client=request.remote,
                                             error=type(exc).__name__ if exc is not None else None)
        if request.writer.output_size > 0:  # some of an answer went out already: the connection is broken
            raise ConnectionError("an answer was partly sent; no error answer can follow it")
        detail = "the request is not valid HTTP" if status < 500 else "the error was logged"
        response = problem_response(status, HTTPStatus(status).phrase, detail)
        response.force_close()
        return response


def use_problem_answers_for_bad_http() -> None:
    """Make every aiohttp server of this process answer unparsable requests with problem documents: aiohttp's
    Server makes its connection handlers from the name `web_server.RequestHandler`, and offers no setting for it."""
    web_server.RequestHandler = ProblemRequestHandler  # type: ignore[misc]
