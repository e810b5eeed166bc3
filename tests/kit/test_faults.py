"""One fault switch (faults.apply_fault), mapped by each server onto its protocol: the HTTP middleware answers an
injected error with a problem and drops the connection on an abort; the gRPC interceptor answers with a status.
Real aiohttp and grpc.aio servers in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from services.kit.errors import ApiError, error_middleware
from services.kit.faults import FaultRegistry, FaultSpec, InjectedAbort, InjectedError, apply_fault
from services.kit.grpc_server import GrpcFaultInterceptor
from services.kit.http_server import fault_middleware
from services.kit.validation import MAX_PAGE, Page, page

pytestmark = pytest.mark.quick

METHOD = "/lab.Echo/Echo"


async def test_the_switch_decides_by_route_or_upstream_and_names_what_it_broke() -> None:
    faults = FaultRegistry()
    error = faults.add(FaultSpec(kind="error", status=500, route="/things/{id}"))
    faults.add(FaultSpec(kind="abort", upstream="users"))
    await apply_fault(faults, route="/other")  # nothing drawn: returns
    await apply_fault(faults, upstream="payments")
    with pytest.raises(InjectedError) as request_fault:
        await apply_fault(faults, route="/things/{id}")
    assert (request_fault.value.status, str(request_fault.value)) == (500, f"fault {error.id} is active")
    with pytest.raises(InjectedAbort, match="^injected abort of the call to users$"):
        await apply_fault(faults, upstream="users")


@contextlib.asynccontextmanager
async def _http_server(faults: FaultRegistry) -> AsyncIterator[tuple[TestServer, list[str]]]:
    handled: list[str] = []

    async def thing(request: web.Request) -> web.Response:
        handled.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware(None), fault_middleware(faults)])
    app.router.add_get("/things/{id}", thing)
    app.router.add_get("/other", thing)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server, handled


async def test_http_answers_an_injected_error_with_its_status_and_drops_the_connection_on_an_abort() -> None:
    faults = FaultRegistry()
    async with _http_server(faults) as (server, handled), aiohttp.ClientSession() as http:
        error = faults.add(FaultSpec(kind="error", status=503, route="/things/{id}"))
        async with http.get(server.make_url("/things/1")) as resp:
            assert resp.status == 503 and resp.content_type == "application/problem+json"
            body = await resp.json()
        assert (body["title"], body["detail"]) == ("Injected Fault", f"fault {error.id} is active")
        async with http.get(server.make_url("/other")) as resp:  # another route is untouched
            assert resp.status == 200
        faults.clear()
        faults.add(FaultSpec(kind="abort", route="/things/{id}"))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.get(server.make_url("/things/2")):
                pass
    assert handled == ["/other"]


@pytest.mark.parametrize(("spec", "code", "details"), [
    (FaultSpec(kind="error", status=503, route=METHOD), grpc.StatusCode.UNAVAILABLE, "fault {id} is active"),
    (FaultSpec(kind="error", status=500), grpc.StatusCode.INTERNAL, "fault {id} is active"),
    (FaultSpec(kind="abort", route=METHOD), grpc.StatusCode.UNAVAILABLE, "injected connection abort"),
])
async def test_grpc_answers_an_injected_fault_with_a_status(spec: FaultSpec, code: grpc.StatusCode,
                                                            details: str) -> None:
    faults = FaultRegistry()
    handled: list[bytes] = []

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        handled.append(request)
        return request

    server = grpc.aio.server(interceptors=[GrpcFaultInterceptor(faults)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "lab.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)
            assert await call(b"before", timeout=5) == b"before"
            fault = faults.add(spec)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call(b"during", timeout=5)
            assert (failed.value.code(), failed.value.details()) == (code, details.format(id=fault.id))
            faults.clear()
            assert await call(b"after", timeout=5) == b"after"
    finally:
        await server.stop(None)
    assert handled == [b"before", b"after"]


def test_a_page_is_limit_and_offset_within_bounds() -> None:
    assert page(make_mocked_request("GET", "/x")) == Page(100, 0)
    assert page(make_mocked_request("GET", f"/x?limit={MAX_PAGE}&offset=7")) == Page(MAX_PAGE, 7)
    for query, field in (("limit=0", "limit"), (f"limit={MAX_PAGE + 1}", "limit"), ("offset=-1", "offset"),
                         ("limit=ten", "limit")):
        with pytest.raises(ApiError) as bad:
            page(make_mocked_request("GET", f"/x?{query}"))
        assert bad.value.status == 400 and [e["field"] for e in bad.value.extra["errors"]] == [field], query
