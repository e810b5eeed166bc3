"""The fast path for unrecorded traces (services/kit/unrecorded.py), over real aiohttp and grpc.aio servers in
this process: an unrecorded trace skips the official instrumentations and still carries its context; a recorded
one goes through them as before."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import context, trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from services.kit import unrecorded, unrecorded_grpc
from services.kit.sampling import lab_sampler
from services.kit.tracing import official_server_middleware

pytestmark = [
    pytest.mark.quick,
    # The official instrumentor's instrument() subclasses web.Application, which aiohttp discourages; the kit undoes
    # that patch at once (tracing.official_server_middleware), and the warning is the package's, not ours.
    pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication:DeprecationWarning"),
]

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331


def _traceparent(sampled: bool) -> str:
    return f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-{'01' if sampled else '00'}"


def _provider(ratio: float = 1.0) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=lab_sampler(ratio, 0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@contextlib.contextmanager
def _in_trace(sampled: bool) -> Iterator[None]:
    """Run as a hop of an existing trace, as a service's handler does."""
    span = NonRecordingSpan(SpanContext(TRACE_ID, PARENT_ID, is_remote=False, trace_flags=TraceFlags(int(sampled))))
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


def _seen_by_handler() -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    return {"trace_id": ctx.trace_id, "span_id": ctx.span_id, "sampled": ctx.trace_flags.sampled,
            "instrumented": is_instrumentation_enabled()}


@contextlib.asynccontextmanager
async def _traced_server(provider: TracerProvider) -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    """A server with the kit's tracing middleware; `seen` gets what each handler saw, and "official" entries for
    each request that went through the official middleware."""
    seen: list[dict[str, Any]] = []
    official = official_server_middleware(provider)

    @web.middleware
    async def counted(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append({"official": True})
        return await official(request, handler)

    async def handler(request: web.Request) -> web.Response:
        seen.append(_seen_by_handler())
        return web.json_response({})

    app = web.Application(middlewares=[unrecorded.server_middleware(counted)])
    app.router.add_get("/things/{id}", handler)
    async with TestServer(app) as server:
        yield server, seen


async def _get(server: TestServer, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/things/1"), headers=headers) as resp:
        return resp.status


async def test_an_unrecorded_request_skips_the_server_instrumentation_and_keeps_its_trace() -> None:
    provider, exporter = _provider()
    async with _traced_server(provider) as (server, seen):
        assert await _get(server, {"traceparent": _traceparent(False)}) == 200
    assert len(seen) == 1  # the official middleware was not called
    assert seen[0]["trace_id"] == TRACE_ID
    assert seen[0]["span_id"] not in (0, PARENT_ID)  # a span of its own, as the SDK would give it
    assert not seen[0]["sampled"]
    assert not seen[0]["instrumented"]  # its statements and calls skip the instrumentations
    assert exporter.get_finished_spans() == ()
    # The kit places the official middleware itself: the instrumentor's patch is undone, no other app gets it.
    assert list(web.Application().middlewares) == []


async def test_a_recorded_request_goes_through_the_official_middleware() -> None:
    provider, exporter = _provider()
    async with _traced_server(provider) as (server, seen):
        assert await _get(server, {"traceparent": _traceparent(True)}) == 200
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "GET /things/{id}"
    assert span.parent is not None and span.parent.span_id == PARENT_ID
    assert span.attributes is not None and span.attributes["http.route"] == "/things/{id}"
    assert seen == [{"official": True},
                    {"trace_id": TRACE_ID, "span_id": span.context.span_id, "sampled": True, "instrumented": True}]


@pytest.mark.parametrize(("ratio", "recorded"), [(0.0, False), (1.0, True)])
async def test_a_new_trace_runs_suppressed_when_the_sampler_drops_it(ratio: float, recorded: bool) -> None:
    provider, exporter = _provider(ratio)
    async with _traced_server(provider) as (server, seen):
        assert await _get(server, {}) == 200
    official, handled = seen  # a new trace: the official middleware decides, through the sampler
    assert official == {"official": True}
    assert handled["trace_id"] != 0
    assert handled["instrumented"] is recorded
    assert len(exporter.get_finished_spans()) == int(recorded)


async def _traceparents_sent(provider: TracerProvider,
                             around: Callable[[], contextlib.AbstractContextManager[Any]]) -> list[str]:
    """The `traceparent` headers one request from a session with the kit's client hooks carries, sent inside
    `around()`."""
    headers: list[list[str]] = []

    async def handler(request: web.Request) -> web.Response:
        headers.append(request.headers.getall("traceparent", []))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/", handler)
    configs = [create_trace_config(tracer_provider=provider), unrecorded.client_trace_config()]
    async with TestServer(app) as server, aiohttp.ClientSession(trace_configs=configs) as http:
        with around():
            async with http.get(server.make_url("/")) as resp:
                assert resp.status == 200
    return headers[0]


@pytest.mark.parametrize(("sampled", "suppressed", "flags"), [
    (False, True, "00"),   # the fast path: the official client is off, the kit's hook carries the context
    (False, False, "00"),  # no fast path (e.g. a consumer's work before it suppresses): the official client does
    (True, False, "01"),   # a recorded trace: the official client, with its span
])
async def test_the_client_carries_the_trace_once_whoever_injects_it(sampled: bool, suppressed: bool,
                                                                    flags: str) -> None:
    provider, exporter = _provider()

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        with _in_trace(sampled), (suppress_instrumentation() if suppressed else contextlib.nullcontext()):
            yield

    (traceparent,) = await _traceparents_sent(provider, around)
    version, trace_id, _, trace_flags = traceparent.split("-")
    assert (trace_id, trace_flags) == (f"{TRACE_ID:032x}", flags)
    assert [s.kind for s in exporter.get_finished_spans()] == ([SpanKind.CLIENT] if sampled else [])


async def test_housekeeping_outside_any_trace_sends_no_context() -> None:
    provider, _ = _provider()
    # what `untraced()` does for the outbox relay's polls
    assert await _traceparents_sent(provider, suppress_instrumentation) == []


@pytest.mark.parametrize("sampled", [False, True])
async def test_grpc_calls_carry_the_trace_and_record_spans_only_when_sampled(sampled: bool) -> None:
    provider, exporter = _provider()
    seen: list[dict[str, Any]] = []

    async def echo(request: bytes, servicer_context: grpc.aio.ServicerContext) -> bytes:
        seen.append(_seen_by_handler())
        return request

    official_client = [i for i in aio_client_interceptors(tracer_provider=provider)
                       if isinstance(i, grpc.aio.UnaryUnaryClientInterceptor)]
    server = grpc.aio.server(interceptors=[
        unrecorded_grpc.GrpcServerInterceptor(aio_server_interceptor(tracer_provider=provider))])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "lab.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=[
                unrecorded_grpc.GrpcClientInterceptor(official_client[0])]) as channel:
            # Inside a hop of the trace; the fast path (unrecorded) runs its handler with instrumentation off.
            with _in_trace(sampled), (contextlib.nullcontext() if sampled else suppress_instrumentation()):
                assert await channel.unary_unary("/lab.Echo/Echo")(b"ping", timeout=5) == b"ping"
    finally:
        await server.stop(None)
    assert seen[0]["trace_id"] == TRACE_ID
    assert seen[0]["instrumented"] is sampled
    spans = {s.kind: s for s in exporter.get_finished_spans()}
    if not sampled:
        assert spans == {}
        assert seen[0]["span_id"] not in (0, PARENT_ID)
        return
    assert set(spans) == {SpanKind.CLIENT, SpanKind.SERVER}
    assert spans[SpanKind.SERVER].parent.span_id == spans[SpanKind.CLIENT].context.span_id
    assert spans[SpanKind.CLIENT].parent.span_id == PARENT_ID


@pytest.mark.parametrize("service", ["gateway", "auth", "users", "notifications"])
def test_services_without_grpc_do_not_load_it(service: str, tmp_path: Any) -> None:
    """The fast path's gRPC side is loaded only where gRPC is used: grpc costs about 9 MB a replica."""
    code = (f"import sys, services.{service}.app, services.kit.tracing as tracing\n"
            "from services.kit.config import CommonConfig\n"
            f"tracing.setup_tracing(CommonConfig.from_env({service!r}, 18999))\n"
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "SPANS_DIR": str(tmp_path)}).stdout
    assert out.strip() == "[]"
