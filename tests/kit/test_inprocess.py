"""Calls between modules of one process (services/kit/inprocess.py, inprocess_grpc.py): the kit's clients keep their
timeout, breaker and error mapping when the callee is an application or a servicer in this process, and the callee's
middlewares and faults still apply. Real aiohttp applications and the real payments servicer's interface; no
server, no socket."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web

from services.kit.errors import error_middleware
from services.kit.faults import FaultRegistry, FaultSpec
from services.kit.grpc_client import GrpcUpstream
from services.kit.http_client import Upstream, UpstreamError
from services.kit.http_server import fault_middleware
from services.kit.inprocess import AppDispatch
from services.kit.inprocess_grpc import LocalStub
from services.kit.logs import setup_logging

pytestmark = pytest.mark.quick


def _app(faults: FaultRegistry) -> web.Application:
    app = web.Application(middlewares=[error_middleware(setup_logging("callee", "callee-1")),
                                       fault_middleware(faults)])

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"body": await request.json(), "q": request.query.get("q"),
                                  "key": request.headers.get("Idempotency-Key"), "remote": request.remote})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def callee() -> AsyncIterator[tuple[AppDispatch, FaultRegistry]]:
    faults = FaultRegistry()
    app = _app(faults)
    runner = web.AppRunner(app)
    await runner.setup()  # startup and freeze, no site: as the monolith sets up a module
    dispatch = AppDispatch("callee", app)
    dispatch.serving = True
    yield dispatch, faults
    await runner.cleanup()


def _upstream(dispatch: AppDispatch, *, timeout_s: float = 0.3) -> Upstream:
    up = Upstream(f"callee-{uuid.uuid4().hex[:6]}", "http://unused", lambda: None, FaultRegistry(),  # type: ignore[arg-type,return-value]
                  timeout_s=timeout_s, retries=0)
    up.serve_in_process(dispatch)
    return up


async def test_a_call_reaches_the_handler_with_body_query_and_headers(callee: Any) -> None:
    dispatch, _ = callee
    status, body = await _upstream(dispatch).request("POST", "/echo?q=1", json={"a": [1, 2]},
                                                     headers={"Idempotency-Key": "k1"})
    assert status == 200
    assert body == {"body": {"a": [1, 2]}, "q": "1", "key": "k1", "remote": "127.0.0.1"}


async def test_the_callees_router_and_error_middleware_answer_as_over_http(callee: Any) -> None:
    dispatch, _ = callee
    up = _upstream(dispatch)
    answer = await up.send("GET", "/nowhere")
    assert answer.status == 404 and answer.headers["Content-Type"].startswith("application/problem+json")
    answer = await up.send("POST", "/echo", body=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status in (400, 500)  # the handler's own failure, answered by the callee's middleware
    assert answer.json()["status"] == answer.status


async def test_the_callers_timeout_holds_and_a_module_not_serving_is_unavailable(callee: Any) -> None:
    dispatch, _ = callee
    up = _upstream(dispatch, timeout_s=0.2)
    with pytest.raises(UpstreamError) as timed_out:
        await up.send("GET", "/slow")
    assert timed_out.value.status == 504 and timed_out.value.reason == "timeout"
    dispatch.serving = False
    with pytest.raises(UpstreamError) as refused:
        await up.send("GET", "/slow")
    assert refused.value.status == 503 and refused.value.reason == "unavailable"


async def test_the_callees_own_fault_applies_and_stays_its_own(callee: Any) -> None:
    dispatch, faults = callee
    faults.add(FaultSpec(kind="error", status=503, ttl_s=5))
    answer = await _upstream(dispatch).send("POST", "/echo", json_body={})
    assert answer.status == 503  # injected by the callee's fault middleware: an answer, passed on


class _Servicer:
    async def Charge(self, request: Any, context: Any) -> Any:  # noqa: N802 - a servicer's method name
        if request == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
        if request == "slow":
            await asyncio.sleep(5)
        return f"charged {request}"


def _grpc(faults: FaultRegistry) -> GrpcUpstream[Any]:
    up: GrpcUpstream[Any] = GrpcUpstream(f"pay-{uuid.uuid4().hex[:6]}", "unused:0", lambda channel: None,
                                         FaultRegistry(), deadline_s=0.2, retries=0)
    up.serve_in_process(LocalStub(_Servicer(), "test.v1.Payments", faults))
    up.open()
    return up


async def test_a_local_stub_answers_aborts_and_deadlines_as_a_channel_would() -> None:
    faults = FaultRegistry()
    up = _grpc(faults)
    assert await up.call(lambda stub: stub.Charge, "42") == "charged 42"
    with pytest.raises(grpc.aio.AioRpcError) as aborted:
        await up.call(lambda stub: stub.Charge, "bad")
    assert aborted.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await up.call(lambda stub: stub.Charge, "slow")
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    faults.add(FaultSpec(kind="error", status=503, ttl_s=5))  # the callee's fault: UNAVAILABLE, as its server maps it
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await up.call(lambda stub: stub.Charge, "42")
    assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
    await up.close()
