"""How the kit's gRPC server interceptors (metrics, faults, the fast path for unrecorded traces) wrap a call: the
method's handler again, with its unary-unary behaviour replaced and its (de)serializers kept."""

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
