"""The fast path for traces that are not recorded: once a trace's first hop has decided not to record it (the
ratio or the cap in sampling.py), every later hop runs with the instrumentations switched off and only carries
the W3C context on.

The official instrumentations do their work whether a span is recorded or not: the aiohttp server middleware
builds the request's attributes (URL parsing, header reads), the client hook parses its URL again, the gRPC and
SQLAlchemy hooks start spans; all of that for a span that `ParentBased` turns into a `NonRecordingSpan` anyway.
Per hop that is more than the hop itself costs in aiohttp (bench/instrumentation_costs.py measures it). So:

- a request whose `traceparent` says "not sampled" skips the server instrumentation; its handler runs in the
  trace's context (a fresh span id, as the SDK would give it) with instrumentation suppressed
  (`suppress_instrumentation`, the switch every official instrumentation checks first);
- a request that starts a trace goes through the official middleware, and if the sampler dropped it, its
  handler runs suppressed too;
- under suppression the official HTTP and gRPC clients do not inject the context, so the kit's client hooks
  here inject it themselves, and only then: a recorded trace is carried by the official instrumentation.

The gRPC side is in unrecorded_grpc.py, so that services without gRPC do not load grpc (about 9 MB a replica).

Recorded traces are untouched: every span of theirs comes from the official instrumentations, as before. An
unrecorded request still has its trace id in its log lines, its `X-Trace-Id` answer and every hop downstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext

_ids = RandomIdGenerator()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_unrecorded(span_context: SpanContext) -> bool:
    return span_context.is_valid and not span_context.trace_flags.sampled


def remote_parent(carrier: Any) -> tuple[context.Context, SpanContext]:
    """The context an incoming request or call carries (W3C headers or metadata), and its span's."""
    parent = propagate.extract(carrier)
    return parent, trace.get_current_span(parent).get_span_context()


@contextmanager
def continue_unrecorded(parent: context.Context, span_context: SpanContext) -> Iterator[None]:
    """Run in an unrecorded trace's context, as a new (non-recording) span of it, with instrumentation off."""
    span = NonRecordingSpan(SpanContext(span_context.trace_id, _ids.generate_span_id(), is_remote=False,
                                        trace_flags=span_context.trace_flags, trace_state=span_context.trace_state))
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        with suppress_instrumentation():
            yield
    finally:
        context.detach(token)


@contextmanager
def suppressed_if_unrecorded() -> Iterator[None]:
    """Switch the instrumentations off for the rest of this task's work if its current trace is not recorded: for
    work that starts its own span rather than through a server instrumentation (a message consumer)."""
    if is_unrecorded(trace.get_current_span().get_span_context()):
        with suppress_instrumentation():
            yield
    else:
        yield


def server_middleware(official: Any) -> Any:
    """An aiohttp middleware in front of the official server middleware (`official`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        parent, span_context = remote_parent(request.headers)
        if is_unrecorded(span_context):
            with continue_unrecorded(parent, span_context):
                return await handler(request)

        async def handle(req: web.Request) -> web.StreamResponse:
            # The official middleware's span is current here: a new trace the sampler dropped runs suppressed.
            with suppressed_if_unrecorded():
                return await handler(req)

        return await official(request, handle)

    return middleware


def inject_if_suppressed(carrier: Any) -> None:
    """The official clients inject nothing under suppression: carry an unrecorded trace's context ourselves."""
    if not is_instrumentation_enabled() and is_unrecorded(trace.get_current_span().get_span_context()):
        propagate.inject(carrier)


def client_trace_config() -> aiohttp.TraceConfig:
    """For the kit's aiohttp session, beside the official client instrumentation."""

    async def on_request_start(session: aiohttp.ClientSession, ctx: Any,
                               params: aiohttp.TraceRequestStartParams) -> None:
        inject_if_suppressed(params.headers)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    return config
