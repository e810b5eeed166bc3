"""gRPC servers with the kit's cross-cutting behaviour: metrics, tracing and faults as interceptors."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc

from services.kit import metrics
from services.kit.faults import grpc_fault_interceptor
from services.kit.grpc_handlers import with_unary_behaviour
from services.kit.tracing import grpc_server_interceptors

if TYPE_CHECKING:
    from services.kit.app import Service

# Clients are told to reconnect after this long (plus the grace for calls in flight). Replicas share one port
# through SO_REUSEPORT, which balances connections, not calls: without an age limit, a long-lived client
# connection stays on the replica it first reached and a newly scaled-up replica gets no traffic.
MAX_CONNECTION_AGE_MS = 5_000
MAX_CONNECTION_AGE_GRACE_MS = 10_000


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """grpc_server_request_duration_seconds{method, code} for unary-unary calls."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
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

        return with_unary_behaviour(handler, observed)


def grpc_server(svc: Service, *, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Server:
    """A grpc.aio server bound later by the caller; interceptors: metrics outermost (they see the final code),
    then tracing (the span covers injected faults), then this replica's faults."""
    interceptors = [GrpcMetricsInterceptor(), *grpc_server_interceptors(), grpc_fault_interceptor(svc.faults)]
    base = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
    ]
    return grpc.aio.server(interceptors=interceptors, options=base + list(options or []))
