"""gateway: the shop's single public entry.

Per request: match the route table, check the declared body size, verify the JWT locally (kit's JwksVerifier: keys
from auth's JWKS, cached, so a short auth outage logs nobody out), rate-limit per client (token subject, else remote
IP), enforce the route's roles, read the body under MAX_BODY_BYTES, and forward through the kit's Upstream (per
upstream timeout, breaker: 504 on timeout, 503 when unavailable). The upstream's status, body and the headers a
client needs come back unchanged. The kit's access log writes the one line per request; the gateway adds the
upstream and the authenticated user to it through structlog's context variables (merged into that line).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from services import contract
from services.kit import metrics
from services.kit.app import Service
from services.kit.config import env_float, env_int
from services.kit.errors import ApiError
from services.kit.http_client import Upstream
from services.kit.tokens import VERIFIER, Principal
from services.kit.tracing import untraced

from .rate_limit import TokenBucketLimiter, retry_after_header
from .routes import ROUTES, Route, match_route, required_roles

# Request headers passed to the upstream. traceparent/tracestate: with instrumentation on, the aiohttp client
# instrumentation replaces them with the gateway's own client span (a child of the incoming trace); with it off,
# the caller's trace context goes through unchanged.
FORWARD_REQUEST_HEADERS = (
    "Authorization", "Idempotency-Key", "Content-Type", "Accept", "traceparent", "tracestate", "baggage",
)
# Response headers passed back to the client (status and body always are).
FORWARD_RESPONSE_HEADERS = (
    "Content-Type", "Retry-After", "Idempotent-Replayed", "Location", "WWW-Authenticate", "Cache-Control",
)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class Gateway:
    """What the gateway forwards with: an Upstream per upstream name, the rate limiter (None: off), the body limit."""

    upstreams: dict[str, Upstream]
    limiter: TokenBucketLimiter | None
    max_body_bytes: int

    @classmethod
    def from_env(cls, svc: Service) -> Gateway:
        rps = env_float("RATE_LIMIT_RPS", 50.0)
        burst = env_int("RATE_LIMIT_BURST", 100)
        # RATE_LIMIT_RPS <= 0 switches the limiter off (benchmarks that measure the services, not the limit)
        limiter = (TokenBucketLimiter(rps, burst, max_clients=env_int("RATE_LIMIT_MAX_CLIENTS", 10_000))
                   if rps > 0 else None)
        retries = env_int("GATEWAY_RETRIES", 1)
        upstreams = {
            route.upstream.name: svc.upstream(
                route.upstream, retries=retries,
                timeout_s=env_float(f"{route.upstream.name.upper()}_TIMEOUT_S", svc.config.upstream_timeout_s))
            for route in ROUTES
        }
        return cls(upstreams, limiter, svc.config.max_body_bytes)


GATEWAY = web.AppKey("gateway", Gateway)

routes = web.RouteTableDef()


def _no_route() -> ApiError:
    return ApiError(404, "Not Found", "no such route")


def _too_large(gateway: Gateway) -> ApiError:
    return ApiError(413, "Content Too Large", f"the request body exceeds {gateway.max_body_bytes} bytes")


async def forward(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    route = match_route(request.path)
    raw_path = request.rel_url.raw_path
    if route is None or not raw_path.startswith(route.prefix):
        raise _no_route()
    if any(seg in (".", "..") for seg in request.path.split("/")):
        raise _no_route()  # no dot segments: an upstream must see the path the roles were checked on
    structlog.contextvars.bind_contextvars(upstream=route.upstream.name)

    declared = request.content_length
    if declared is not None and declared > gateway.max_body_bytes:
        raise _too_large(gateway)

    principal: Principal | None = None
    auth_error: ApiError | None = None
    if not route.public:
        try:
            principal = await request.app[VERIFIER].principal(request)
        except ApiError as exc:
            auth_error = exc
    client = f"user:{principal.user_id}" if principal else f"ip:{request.remote}"
    if principal is not None:
        structlog.contextvars.bind_contextvars(user=principal.user_id)

    if gateway.limiter is not None:
        wait_s = gateway.limiter.acquire(client)
        if wait_s > 0:
            metrics.gateway_ratelimit_rejections_total.inc()
            raise ApiError(
                429, "Too Many Requests", "the rate limit for this client is exhausted, retry later",
                headers={"Retry-After": retry_after_header(wait_s)},
                type="https://chaoslab.dev/problems/rate-limited",
            )
    if auth_error is not None:
        raise auth_error
    if principal is not None:
        roles = required_roles(request.method, request.path)
        if not principal.has_any(roles):
            raise ApiError(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}")

    body = await _read_body(request, gateway)
    return await _send(request, gateway.upstreams[route.upstream.name], route, raw_path, body)


OPENAPI = Path(__file__).with_name("openapi.json")  # the public API's contract (python -m services.openapi)
OPENAPI_DOCUMENT = web.AppKey("openapi", bytes)


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The public API's contract, as committed: what every client, and the fuzzer in the tests, holds the shop to."""
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")


# Every public prefix, and everything below it, goes to `forward`.
for _route in ROUTES:
    routes.route("*", _route.prefix)(forward)
    routes.route("*", _route.prefix + "/{tail:.*}")(forward)


async def _read_body(request: web.Request, gateway: Gateway) -> bytes | None:
    if not request.body_exists:
        return None
    # Read ourselves (not request.read()) so that a chunked body without Content-Length is cut off at the limit
    buf = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        buf += chunk
        if len(buf) > gateway.max_body_bytes:
            raise _too_large(gateway)
    return bytes(buf)


async def _send(request: web.Request, upstream: Upstream, route: Route, raw_path: str,
                body: bytes | None) -> web.Response:
    headers = {h: request.headers[h] for h in FORWARD_REQUEST_HEADERS if h in request.headers}
    if request.remote:
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {request.remote}" if prior else request.remote
    path = route.upstream_prefix + raw_path[len(route.prefix):]
    idempotent = request.method in IDEMPOTENT_METHODS or (
        request.method == "POST" and route.keyed_post and path == route.upstream_prefix
        and "Idempotency-Key" in request.headers
    )
    # UpstreamError (503/504 problem) propagates to the kit's error middleware
    answer = await upstream.send(
        request.method, path, body=body, headers=headers, params=request.rel_url.query, idempotent=idempotent
    )
    out_headers = {h: answer.headers[h] for h in FORWARD_RESPONSE_HEADERS if h in answer.headers}
    return web.Response(status=answer.status, body=answer.body, headers=out_headers)


async def warm_keys(svc: Service) -> AsyncGenerator[None, None]:
    """Fetch auth's JWKS before the public port opens, so that the first requests need not wait for it."""
    with untraced():  # a warm-up, not a request
        fetched = await svc.verifier.refresh()
    if not fetched:
        svc.log.warning("auth's JWKS is not reachable yet; keys will be fetched on the first token")
    yield


def create_service() -> Service:
    svc = Service(contract.GATEWAY)
    svc.app[GATEWAY] = Gateway.from_env(svc)
    svc.app[OPENAPI_DOCUMENT] = OPENAPI.read_bytes()

    async def jwks_loaded() -> bool:
        # not required: the gateway serves /api/auth/* (and cached keys) while auth is away
        return svc.verifier.has_keys or await svc.verifier.refresh()

    svc.add_readiness_check("jwks", jwks_loaded, required=False)
    svc.lifetime(warm_keys)
    svc.app.add_routes(routes)
    return svc


def main() -> None:
    create_service().run()
