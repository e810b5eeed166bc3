"""Authorization by caller identity: a service accepts calls only from the services whose `calls` name it in the
shop's call graph (services/contract.py, `callers_of`), the graph that also makes the NetworkPolicies, the native
network policy and Istio's AuthorizationPolicies. The caller is who its verified client certificate says it is (the
URI SAN, a SPIFFE ID: services.kit.tls); nothing the caller sends in a header counts.

A refusal is a 403 problem (`caller-not-allowed`) over HTTP and PERMISSION_DENIED over gRPC, counted in
authz_denied_total{caller, callee, protocol} and logged as one warning line ("caller refused") naming both. The
caller label is a service's name or `unknown` (a certificate of the lab's CA that names no service, such as the
lab's own tools'), so it stays a label of a handful of values.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.contract import SERVICE_NAMES, callers_of, identity_name
from services.kit import metrics
from services.kit.errors import ApiError
from services.kit.tls import peer_uri

CALLER_NOT_ALLOWED = "https://chaoslab.dev/problems/caller-not-allowed"


class Callers:
    """Who may call `callee`, and the refusal of anyone else: one place for both protocols (the gRPC server's
    interceptor is in grpc_server.py, which alone loads grpc)."""

    def __init__(self, callee: str, log: Any) -> None:
        self.callee = callee
        self.allowed = frozenset(callers_of(callee))
        self.log = log

    def check(self, uri: str | None, protocol: str, what: str) -> str | None:
        """The caller's name when it may call; None (counted and logged) when it may not."""
        name = identity_name(uri)
        if name in self.allowed:
            return name
        label = name if name in SERVICE_NAMES else "unknown"
        metrics.authz_denied_total.labels(label, self.callee, protocol).inc()
        self.log.warning("caller refused", caller=uri, callee=self.callee, protocol=protocol, call=what,
                         allowed=sorted(self.allowed))
        return None

    def detail(self, uri: str | None) -> str:
        who = identity_name(uri) or "this caller"
        return f"{who} may not call {self.callee} (the shop's call graph allows: {', '.join(sorted(self.allowed))})"


def caller_middleware(callers: Callers) -> Any:
    """The public application's check of its caller (after the error middleware: a refusal is a problem answer)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        uri = peer_uri(request.transport)
        caller = callers.check(uri, "http", f"{request.method} {request.path}")
        if caller is None:
            raise ApiError(403, "Forbidden", callers.detail(uri), type=CALLER_NOT_ALLOWED)
        request["caller"] = caller
        return await handler(request)

    return middleware

