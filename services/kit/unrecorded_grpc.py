"""The gRPC side of the fast path for unrecorded traces (unrecorded.py): interceptors in front of the official
ones. Loaded only by services that serve or call gRPC."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from services.kit.grpc_handlers import with_unary_behaviour
from services.kit.unrecorded import continue_unrecorded, inject_if_suppressed, is_unrecorded, remote_parent


class GrpcClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Fronts the official unary-unary client interceptor (`official`): under suppression in an unrecorded trace it
    puts the context into the call's metadata itself; otherwise the official one does everything. One interceptor
    rather than two in a row: each layer of grpc.aio's interceptor chain costs a hop of its own."""

    def __init__(self, official: grpc.aio.UnaryUnaryClientInterceptor) -> None:
        self._official = official

    async def intercept_unary_unary(self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        if is_instrumentation_enabled():
            return await self._official.intercept_unary_unary(continuation, client_call_details, request)
        carrier: dict[str, str] = {}
        inject_if_suppressed(carrier)
        if carrier:
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *carrier.items())
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method, client_call_details.timeout, metadata,
                client_call_details.credentials, client_call_details.wait_for_ready)
        return await continuation(client_call_details, request)


class GrpcServerInterceptor(grpc.aio.ServerInterceptor):
    """Fronts the official server interceptor (`official`): a unary call whose metadata says "not sampled" runs
    without it, in the trace's context with instrumentation off; every other call goes through it."""

    def __init__(self, official: grpc.aio.ServerInterceptor) -> None:
        self._official = official

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        parent, span_context = remote_parent(
            {key: value for key, value in details.invocation_metadata or () if isinstance(value, str)})
        if not is_unrecorded(span_context):
            return await self._official.intercept_service(continuation, details)
        handler = await continuation(details)
        if handler is None:
            return None
        if handler.unary_unary is None:  # a streaming call (the shop has none): the official path
            return await self._official.intercept_service(continuation, details)
        behaviour = handler.unary_unary

        async def unrecorded(request: Any, servicer_context: grpc.aio.ServicerContext) -> Any:
            with continue_unrecorded(parent, span_context):
                return await behaviour(request, servicer_context)

        return with_unary_behaviour(handler, unrecorded)
