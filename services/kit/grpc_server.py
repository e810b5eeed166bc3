"""gRPC servers with the kit's cross-cutting behaviour as interceptors: metrics, tracing, and this replica's injected
faults mapped onto gRPC statuses. Loaded only by services that serve gRPC (grpc costs about 9 MB a replica)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from services.kit import metrics
from services.kit.authz import Callers
from services.kit.faults import FaultRegistry, InjectedAbort, InjectedError, apply_fault
from services.kit.grpc_handlers import Behaviour, UnaryServerInterceptor
from services.kit.tls import Identity, grpc_peer_uri
from services.kit.tracing import grpc_server_interceptors

# Clients are told to reconnect after this long (plus the grace for calls in flight). Replicas share one port
# through SO_REUSEPORT, which balances connections, not calls: without an age limit, a long-lived client
# connection stays on the replica it first reached and a newly scaled-up replica gets no traffic.
MAX_CONNECTION_AGE_MS = 5_000
MAX_CONNECTION_AGE_GRACE_MS = 10_000

class GrpcMetricsInterceptor(UnaryServerInterceptor):
    """grpc_server_request_duration_seconds{method, code} for unary-unary calls."""

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await behaviour(request, context)
            except asyncio.CancelledError:
                code = "CANCELLED"  # the client went away or its deadline passed
                raise
            except Exception:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                metrics.grpc_server_request_duration_seconds.labels(method, code).observe(
                    time.perf_counter() - started)

        return observed


class GrpcFaultInterceptor(UnaryServerInterceptor):
    """This replica's faults on gRPC (`route`: the full method name): an injected error answers UNAVAILABLE when its
    status is 503, INTERNAL otherwise; an injected abort answers UNAVAILABLE."""

    def __init__(self, registry: FaultRegistry) -> None:
        self._registry = registry

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def faulted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            status = await self._injected_status(method)
            if status is not None:
                await context.abort(*status)
            return await behaviour(request, context)

        return faulted

    async def _injected_status(self, method: str) -> tuple[grpc.StatusCode, str] | None:
        try:
            await apply_fault(self._registry, route=method)
        except InjectedError as exc:
            return (grpc.StatusCode.UNAVAILABLE if exc.status == 503 else grpc.StatusCode.INTERNAL), str(exc)
        except InjectedAbort as exc:
            return grpc.StatusCode.UNAVAILABLE, str(exc)
        return None


class GrpcCallerInterceptor(UnaryServerInterceptor):
    """Authorization by caller identity (authz.py) for gRPC: PERMISSION_DENIED before the method runs."""

    def __init__(self, callers: Callers) -> None:
        self.callers = callers

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def authorized(request: Any, context: grpc.aio.ServicerContext) -> Any:
            uri = grpc_peer_uri(context)
            if self.callers.check(uri, "grpc", method) is None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, self.callers.detail(uri))
            return await behaviour(request, context)

        return authorized


def bind(server: grpc.aio.Server, address: str, identity: Identity | None) -> None:
    """Listen on `address`: with mutual TLS when the replica has an identity (every caller shows a certificate of
    the CA; the credentials follow its renewals), else plain."""
    bound = (server.add_secure_port(address, identity.grpc_server_credentials()) if identity is not None
             else server.add_insecure_port(address))
    if bound == 0:
        raise RuntimeError(f"cannot bind the gRPC port {address}")


def grpc_server(faults: FaultRegistry, *, options: list[tuple[str, Any]] | None = None,
                callers: Callers | None = None) -> grpc.aio.Server:
    """A grpc.aio server bound later by the caller (`bind`); interceptors: metrics outermost (they see the final
    code), then tracing (the span covers refusals and injected faults), then, with `callers`, the caller's
    authorization, then this replica's faults."""
    authorization = [GrpcCallerInterceptor(callers)] if callers is not None else []
    interceptors = [GrpcMetricsInterceptor(), *grpc_server_interceptors(), *authorization,
                    GrpcFaultInterceptor(faults)]
    base = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
    ]
    return grpc.aio.server(interceptors=interceptors, options=base + list(options or []))
