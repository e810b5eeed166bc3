"""How the kit's gRPC server interceptors (metrics, faults, the fast path for unrecorded traces) wrap a call: the
method's handler again, with its unary-unary behaviour replaced and its (de)serializers kept. A module of its own,
importing grpc only, so that the fast path (unrecorded_grpc.py, loaded from tracing.py) and the server (grpc_server.py,
which loads tracing.py) both use it without importing each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def with_unary_behaviour(handler: grpc.RpcMethodHandler, behaviour: Behaviour) -> grpc.RpcMethodHandler:
    """`handler` answering with `behaviour`, which calls `handler.unary_unary` itself."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class UnaryServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the behaviour of unary-unary methods (`wrap`); other handlers pass through untouched."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return with_unary_behaviour(handler, self.wrap(handler.unary_unary, details.method))

    def wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        raise NotImplementedError
