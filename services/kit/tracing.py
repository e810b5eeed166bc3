"""OpenTelemetry tracing: W3C context everywhere, parent-based ratio sampling with a cap per second (sampling.py),
the instrumentations off for traces not recorded (unrecorded.py), OTLP when an endpoint is configured, and in
native mode (no collector) spans kept as JSON lines so `chaoslab trace` can find them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from services.kit import unrecorded
from services.kit.config import CommonConfig
from services.kit.sampling import lab_sampler

# Health checks and scrapes every two seconds would drown the traces that matter. They go to the admin port, which
# has no tracing middleware; should a public route ever serve them, the official middleware skips it too.
os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "health,metrics,admin")
# The stable HTTP and database semantic conventions (http.request.method, url.path, db.query.text, ...) rather
# than the instrumentations' default of the old, deprecated names. It does not change their cost (measured).
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to one file per replica; a line is small and self-contained."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the process' life

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # orjson: half the CPU per span of json.dumps here (11 -> 5 us, measured), and it writes attribute
        # tuples as arrays itself.
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            parent = span.parent
            res = span.resource.attributes
            status = span.status
            lines.append(orjson.dumps({
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(parent.span_id, "016x") if parent else None,
                "name": span.name,
                "kind": _KIND_NAMES[span.kind],
                "service": res.get("service.name"),
                "replica": res.get("service.instance.id"),
                **({"address": res["host.ip"][0]} if res.get("host.ip") else {}),
                "start_ns": span.start_time,
                "end_ns": span.end_time,
                "status": _STATUS_NAMES[status.status_code],
                "error": status.description,
                "attributes": dict(span.attributes or {}),  # a read-only view: orjson takes dicts only
                # what happened inside it: a breaker that refused a call, a retry (services/kit/resilience.py)
                **({"events": [{"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                               for e in span.events]} if span.events else {}),
            }, option=orjson.OPT_APPEND_NEWLINE))
        self._file.write(b"".join(lines))
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


_KIND_NAMES = {kind: kind.name.lower() for kind in trace.SpanKind}
_STATUS_NAMES = {code: code.name.lower() for code in trace.StatusCode}


_provider: TracerProvider | None = None
_server_middleware: Any = None


def setup_tracing(config: CommonConfig) -> TracerProvider | None:
    """Install the global tracer provider and the library instrumentations; None when instrumentation is off."""
    global _provider, _server_middleware
    if not config.instrumentation:
        return None
    if _provider is not None:
        return _provider  # once per process: the modular monolith's modules share the process' provider
    address = os.environ.get("REPLICA_ADDRESS")  # the replica's own address in an isolated lab
    resource = Resource.create({
        "service.name": config.service,
        "service.instance.id": config.replica,
        "service.namespace": "chaoslab",
        **({"host.ip": [address]} if address else {}),
    })
    provider = TracerProvider(resource=resource, sampler=lab_sampler(config.sampler_ratio, config.traces_per_second))
    if config.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_ENDPOINT itself
    else:
        exporter = JsonLinesSpanExporter(os.path.join(config.spans_dir, f"{config.replica}.jsonl"))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    # The instrumentations also record OpenTelemetry metrics, which nothing exports (the kit's Prometheus metrics
    # are the lab's): instruments that do nothing, rather than proxies that look for a real provider per call.
    metrics.set_meter_provider(NoOpMeterProvider())
    _provider = provider

    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    _server_middleware = unrecorded.server_middleware(official_server_middleware(provider))
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    return provider


def official_server_middleware(provider: TracerProvider) -> Any:
    """The official aiohttp server middleware, configured, without the instrumentor's patch of web.Application.

    Its instrument() configures the middleware (excluded URLs, semantic conventions) and patches web.Application
    to put it first in every application. The kit places it itself, behind the fast path for unrecorded traces
    (unrecorded.py) and in the public application only, so it takes the middleware and undoes the patch."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor, create_aiohttp_middleware

    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        return create_aiohttp_middleware(tracer_provider=provider)
    finally:
        instrumentor.uninstrument()


def http_server_middlewares() -> list[Any]:
    """Tracing middlewares for a service's public aiohttp application (outermost first)."""
    return [] if _server_middleware is None else [_server_middleware]


def http_client_trace_configs() -> list[aiohttp.TraceConfig]:
    """For the kit's client session: the official instrumentation adds its own to every session."""
    return [] if _provider is None else [unrecorded.client_trace_config()]


def instrument_sqlalchemy(engine: Any) -> None:
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sync_engine = engine.sync_engine
    tracer = SQLAlchemyInstrumentor().instrument(engine=sync_engine, tracer_provider=_provider)
    # The instrumentor also wraps every Engine.connect in a "connect" span: one per session, a pool checkout
    # that tells nothing, and a third of the SQL spans of an order. Statement spans stay (bench/overhead.py).
    unwrap(Engine, "connect")
    # Its pool checkout/checkin listeners only feed the connection-usage metric, which goes nowhere;
    # four calls per session.
    if tracer is not None:
        for identifier, listener in (("checkout", tracer._pool_checkout), ("checkin", tracer._pool_checkin)):
            if event.contains(sync_engine, identifier, listener):
                event.remove(sync_engine, identifier, listener)


def grpc_server_interceptors() -> list[Any]:
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    from services.kit.unrecorded_grpc import GrpcServerInterceptor

    return [GrpcServerInterceptor(aio_server_interceptor(tracer_provider=_provider))]


def grpc_client_interceptors() -> list[Any]:
    if _provider is None:
        return []
    import grpc
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    from services.kit.unrecorded_grpc import GrpcClientInterceptor

    official = aio_client_interceptors(tracer_provider=_provider)
    return [GrpcClientInterceptor(i) if isinstance(i, grpc.aio.UnaryUnaryClientInterceptor) else i
            for i in official]


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


@contextmanager
def untraced() -> Iterator[None]:
    """No spans from the instrumentations inside: for housekeeping that no request asked for (the outbox
    relay's polls, readiness pings). Each of its statements would otherwise be a one-span trace of its own,
    crowding `chaoslab traces --slowest` with lock waits nobody is waiting on. Spans started explicitly with a
    request's context (the relay's publish span) are still recorded."""
    with suppress_instrumentation():
        yield


def current_trace_ids() -> tuple[str | None, str | None]:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_exemplar() -> dict[str, str] | None:
    """The exemplar for a histogram observation: the trace id, only when the span is sampled."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": format(ctx.trace_id, "032x")}
