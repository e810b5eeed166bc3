"""What each instrumented operation costs, in CPU microseconds, measured in one process with nothing else in it:
an aiohttp request (client and server, the kit's tracing setup), a grpc.aio unary call (client and server, the
kit's interceptors) and a SQLAlchemy write + read session on SQLite (the kit's Database). Each mode runs in a fresh
interpreter, alternated `--rounds` times:

- off: no tracer provider (INSTRUMENTATION=off);
- new-dropped: ratio 0, each operation starts a new trace that the sampler drops (the official instrumentations
  run and make non-recording spans; what a trace's first hop pays when it is not recorded);
- unrecorded-hop: each operation runs as a later hop of a trace its first hop did not record, as a service's
  handler does (the kit's fast path, services/kit/unrecorded.py: instrumentations off, only the context carried);
- sampled: ratio 1, every span recorded and exported.

    .venv/bin/python bench/instrumentation_costs.py [--rounds 2] [--n 3000]

CPU time (time.process_time, all threads) is much steadier than throughput on a shared machine, so this says
where bench/overhead.py's difference comes from. Results go to bench/results/instrumentation_costs.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("off", "new-dropped", "unrecorded-hop", "sampled")
_RATIO = {"new-dropped": "0.0", "unrecorded-hop": "1.0", "sampled": "1.0"}


def _setup_tracing(mode: str, spans_dir: str) -> None:
    if mode == "off":
        return
    os.environ["OTEL_TRACES_SAMPLER_ARG"] = _RATIO[mode]
    os.environ["TRACES_PER_SECOND"] = "0"  # the operations here come faster than the lab's cap: no cap
    os.environ["SPANS_DIR"] = spans_dir
    from services.kit import tracing
    from services.kit.config import CommonConfig

    tracing.setup_tracing(CommonConfig.from_env("bench", 18999))


_hop_of_unrecorded_trace = False


@contextlib.contextmanager
def _as_a_hop() -> Iterator[None]:
    """In unrecorded-hop mode, run as a handler of a request whose trace was not recorded runs."""
    if not _hop_of_unrecorded_trace:
        yield
        return
    from opentelemetry import context
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import SpanContext, TraceFlags

    from services.kit.unrecorded import continue_unrecorded

    ids = RandomIdGenerator()
    parent = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=True, trace_flags=TraceFlags(0))
    with continue_unrecorded(context.get_current(), parent):
        yield


async def _cpu_us_per_call(one: Callable[[], Awaitable[None]], *, warmup: int, n: int) -> float:
    """CPU microseconds (all threads) per call of `one`, after `warmup` calls that fill pools and caches."""
    with _as_a_hop():
        for _ in range(warmup):
            await one()
        started = time.process_time()
        for _ in range(n):
            await one()
        return (time.process_time() - started) / n * 1e6


async def _http(n: int) -> float:
    import aiohttp
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    from services.kit import tracing

    app = web.Application(middlewares=tracing.http_server_middlewares())  # as the kit's public application
    app.router.add_get("/items/{id}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port the OS chose
    try:
        async with aiohttp.ClientSession(trace_configs=tracing.http_client_trace_configs()) as http:
            async def one() -> None:
                async with http.get(f"http://127.0.0.1:{port}/items/1") as resp:
                    await resp.read()

            return await _cpu_us_per_call(one, warmup=300, n=n)
    finally:
        await runner.cleanup()


async def _grpc(n: int) -> float:
    import grpc

    from services.kit import tracing

    async def charge(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server(interceptors=tracing.grpc_server_interceptors())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Payments", {"Charge": grpc.unary_unary_rpc_method_handler(charge)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             interceptors=tracing.grpc_client_interceptors()) as channel:
            call = channel.unary_unary("/bench.Payments/Charge")

            async def one() -> None:
                await call(b"order", timeout=5)

            return await _cpu_us_per_call(one, warmup=300, n=n)
    finally:
        await server.stop(None)


async def _sql(n: int, path: str) -> float:
    import uuid

    from opentelemetry import trace
    from sqlalchemy import Column, MetaData, String, Table, select

    from services.kit import tracing
    from services.kit.db import Database

    md = MetaData()
    table = Table("t", md, Column("id", String, primary_key=True))
    db = Database(f"sqlite+aiosqlite:///{path}")
    tracing.instrument_sqlalchemy(db.engine)
    await db.create_all(md)
    tracer = trace.get_tracer("bench")

    async def one() -> None:
        with tracer.start_as_current_span("request"):  # as in a handler: statements have a parent
            async with db.session(write=True) as session:
                await session.execute(table.insert().values(id=str(uuid.uuid4())))
            async with db.session() as session:
                await session.execute(select(table).limit(1))

    try:
        return await _cpu_us_per_call(one, warmup=200, n=n)
    finally:
        await db.close()


def _child(mode: str, n: int) -> None:
    import asyncio

    global _hop_of_unrecorded_trace
    _hop_of_unrecorded_trace = mode == "unrecorded-hop"
    with tempfile.TemporaryDirectory(prefix="chaoslab-costs-") as tmp:
        _setup_tracing(mode, os.path.join(tmp, "spans"))
        http = asyncio.run(_http(n))
        rpc = asyncio.run(_grpc(n))
        sql = asyncio.run(_sql(n, os.path.join(tmp, "bench.db")))
    print(json.dumps({"http_request_us": round(http, 1), "grpc_call_us": round(rpc, 1),
                      "sql_write_read_us": round(sql, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.n)
        return
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(args.n)], cwd=REPO,
                                 env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, capture_output=True,
                                 text=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{mode:>14}: {runs[mode][-1]}", flush=True)
    median = {m: {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]} for m in MODES}
    summary = {
        "settings": {"rounds": args.rounds, "n": args.n},
        "runs": runs,
        "median_cpu_us": median,
        "added_cpu_us": {mode: {k: round(median[mode][k] - median["off"][k], 1) for k in median["off"]}
                         for mode in MODES[1:]},
    }
    out_path = Path(__file__).parent / "results" / "instrumentation_costs.json"
    out_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"added CPU us: {summary['added_cpu_us']} -> {out_path}")


if __name__ == "__main__":
    main()
