"""gRPC calls between modules of one process (the modular monolith): `LocalStub` calls a servicer's method with the
kit's server behaviour around it (the RED metrics and the callee's faults, grpc_server.py) and turns an abort into
the AioRpcError a channel would raise, so that the caller's GrpcUpstream (grpc_client.py) and its error mapping stay
as they are. No channel, no serialisation: the request object is the caller's. (inprocess.py says why no caller
authorization.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.kit.faults import FaultRegistry
from services.kit.grpc_server import GrpcFaultInterceptor, GrpcMetricsInterceptor
from services.kit.metrics import MODULE


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _Context:
    """The part of grpc.aio.ServicerContext the kit's servicers and interceptors use."""

    def __init__(self) -> None:
        self._code: grpc.StatusCode | None = None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self._code = code
        raise _Aborted(code, details)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "in-process"


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class LocalStub:
    """A stub whose methods call `servicer` in this process: `stub.Charge(request, timeout=...)` as a generated
    stub's, with the callee's metrics and faults around the method, and a deadline that ends it as
    DEADLINE_EXCEEDED."""

    def __init__(self, servicer: Any, service_name: str, faults: FaultRegistry, module: str = "") -> None:
        self._module = module  # the callee module, whose metrics the call records (services/kit/metrics.py)
        self._servicer = servicer
        self._service_name = service_name  # the full gRPC service name, e.g. chaoslab.payments.v1.Payments
        self._faults = faults

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        behaviour = getattr(self._servicer, method)
        full = f"/{self._service_name}/{method}"
        # the server's interceptors, in grpc_server()'s order: metrics outermost, then the faults
        wrapped = GrpcMetricsInterceptor().wrap(GrpcFaultInterceptor(self._faults).wrap(behaviour, full), full)

        # `timeout` is the generated stub's keyword (GrpcUpstream passes its deadline so)
        async def call(request: Any, *, timeout: float | None = None, **_: Any) -> Any:  # noqa: ASYNC109
            module = MODULE.set(self._module)
            try:
                async with asyncio.timeout(timeout):
                    return await wrapped(request, _Context())
            except _Aborted as exc:
                raise _rpc_error(exc.code, exc.details) from None
            except TimeoutError:
                raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
            finally:
                MODULE.reset(module)

        return call
