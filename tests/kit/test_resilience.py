"""The kit's two resilient clients (http_client.Upstream, grpc_client.GrpcUpstream) share one core
(resilience.py): under the same fault they make the same attempts with the same outcome labels, and their breakers
open and refuse alike. Real aiohttp and grpc.aio servers in this process; each test has upstream names of its own,
so the shared Prometheus registry's counts are its own."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from services.kit.breaker import make_breaker
from services.kit.faults import FaultRegistry, FaultSpec
from services.kit.grpc_client import GrpcUpstream
from services.kit.http_client import Upstream, UpstreamError
from services.kit.resilience import CircuitOpen

pytestmark = pytest.mark.quick

OUTCOMES = ("ok", "error", "timeout", "circuit_open")
DEADLINE_S = 0.2


@dataclass
class Side:
    """One protocol's server and a client of it; `call()` says what a call looked like to the caller."""

    name: str
    protocol: str
    faults: FaultRegistry
    call: Callable[[], Awaitable[str]]
    hang: asyncio.Event  # set: the server answers nothing until the caller gives up
    hits: list[int] = field(default_factory=list)

    def outcomes(self) -> dict[str, float]:
        """client_request_duration_seconds_count by outcome for this upstream (the ones that were observed)."""
        counts = {o: REGISTRY.get_sample_value("client_request_duration_seconds_count",
                                               {"upstream": self.name, "protocol": self.protocol, "outcome": o})
                  for o in OUTCOMES}
        return {o: n for o, n in counts.items() if n}

    def breaker_state(self) -> float | None:
        return REGISTRY.get_sample_value("circuit_breaker_state", {"upstream": self.name})


@contextlib.asynccontextmanager
async def http_upstream(*, retries: int, fail_max: int) -> AsyncIterator[Side]:
    hang, released, hits = asyncio.Event(), asyncio.Event(), []

    async def echo(request: web.Request) -> web.Response:
        hits.append(1)
        if hang.is_set():
            await released.wait()  # long after the client's timeout: at the end of the test
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/echo", echo)
    name = f"http-{uuid.uuid4().hex[:8]}"
    faults = FaultRegistry()
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        client = Upstream(name, str(server.make_url("")), lambda: session, faults, timeout_s=DEADLINE_S,
                          retries=retries, breaker=make_breaker(name, fail_max, 60.0))

        async def call() -> str:
            try:
                status, _ = await client.request("GET", "/echo", idempotent=True)
            except UpstreamError as exc:
                return exc.reason  # unavailable, timeout, circuit_open
            return "ok" if status == 200 else f"status {status}"

        try:
            yield Side(name, "http", faults, call, hang, hits)
        finally:
            released.set()


@contextlib.asynccontextmanager
async def grpc_upstream(*, retries: int, fail_max: int) -> AsyncIterator[Side]:
    hang, hits = asyncio.Event(), []

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        hits.append(1)
        if hang.is_set():
            await asyncio.Event().wait()  # the client's deadline ends the call, the server's stop this
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "lab.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    name = f"grpc-{uuid.uuid4().hex[:8]}"
    faults = FaultRegistry()
    client = GrpcUpstream(name, f"127.0.0.1:{port}", lambda channel: channel.unary_unary("/lab.Echo/Echo"), faults,
                          deadline_s=DEADLINE_S, retries=retries, fail_max=fail_max, reset_s=60.0, channels=2)

    async def call() -> str:
        try:
            await client.call(lambda stub: stub, b"ping", idempotent=True)
        except CircuitOpen:
            return "circuit_open"
        except grpc.aio.AioRpcError as exc:
            return {grpc.StatusCode.UNAVAILABLE: "unavailable",
                    grpc.StatusCode.DEADLINE_EXCEEDED: "timeout"}.get(exc.code(), exc.code().name)
        return "ok"

    client.open()
    try:
        yield Side(name, "grpc", faults, call, hang, hits)
    finally:
        await client.close()
        await server.stop(None)


PROTOCOLS = {"http": http_upstream, "grpc": grpc_upstream}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_healthy_upstream_answers_in_one_attempt(protocol: str) -> None:
    async with PROTOCOLS[protocol](retries=2, fail_max=5) as up:
        assert [await up.call() for _ in range(3)] == ["ok"] * 3
        assert up.outcomes() == {"ok": 3}
        assert len(up.hits) == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_injected_abort_is_retried_and_fails_as_unreachable(protocol: str) -> None:
    async with PROTOCOLS[protocol](retries=2, fail_max=10) as up:
        up.faults.add(FaultSpec(kind="abort", upstream=up.name))
        assert await up.call() == "unavailable"
        assert up.outcomes() == {"error": 3}  # the first attempt and two retries, each counted
        assert up.hits == []  # the fault stands in for the upstream: nothing reached it
        up.faults.clear()
        assert await up.call() == "ok"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_upstream_that_answers_nothing_is_a_timeout(protocol: str) -> None:
    async with PROTOCOLS[protocol](retries=0, fail_max=10) as up:
        up.hang.set()
        assert await up.call() == "timeout"
        assert up.outcomes() == {"timeout": 1}
        assert len(up.hits) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_tripping_failure_reports_itself_and_the_open_breaker_refuses_without_a_call(protocol: str) -> None:
    async with PROTOCOLS[protocol](retries=0, fail_max=2) as up:
        up.hang.set()
        # the second timeout opens the breaker; that call still reports what happened to it
        assert [await up.call() for _ in range(2)] == ["timeout", "timeout"]
        assert up.breaker_state() == 2
        assert [await up.call() for _ in range(3)] == ["circuit_open"] * 3
        assert up.outcomes() == {"timeout": 2, "circuit_open": 3}
        assert len(up.hits) == 2  # refused calls reach nobody


async def test_an_injected_error_keeps_each_protocols_mapping() -> None:
    """What an injected error is differs by protocol: over HTTP the upstream answers with the fault's status (a
    problem document), which is passed on like any answer (not retried, no breaker failure); over gRPC it is
    UNAVAILABLE, which is retried like a real one."""
    async with http_upstream(retries=2, fail_max=1) as up:
        up.faults.add(FaultSpec(kind="error", status=502, upstream=up.name))
        assert [await up.call() for _ in range(3)] == ["status 502"] * 3
        assert up.outcomes() == {"error": 3}
        assert up.breaker_state() == 0 and up.hits == []
    async with grpc_upstream(retries=2, fail_max=10) as up:
        up.faults.add(FaultSpec(kind="error", status=502, upstream=up.name))
        assert await up.call() == "unavailable"
        assert up.outcomes() == {"error": 3}
        assert up.hits == []
