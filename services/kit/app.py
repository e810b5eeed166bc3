"""The service factory: every replica gets the same public/admin ports, health, metrics, tracing, logs,
faults, errors and graceful shutdown, so that a service's own module holds only its business logic.

A service is built from its facts in services/contract.py (`Service(contract.ORDERS)`), sets its resources on
its applications under typed keys (`svc.app[PAYMENTS] = ...`) and gives every resource one lifetime: an async
generator that opens it, yields while the replica serves, and closes it (`svc.lifetime(fn)`), the way aiohttp's
cleanup contexts work. Start: the admin port, the database (waited for, DB_CONNECT_TIMEOUT_S at most) and its
tables (untraced), the lifetimes in order, then the public port. SIGTERM: not ready, but still serving for
SHUTDOWN_DELAY_S (so that load balancers, endpoints and DNS stop sending first), then the public port drains its
in-flight requests and the lifetimes close in reverse. A SIGTERM while the replica starts stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import MetaData

from services.contract import ServiceFacts, native_port
from services.kit import metrics
from services.kit.admin import admin_app
from services.kit.breaker import make_breaker
from services.kit.config import CommonConfig, ConfigError, upstream_address
from services.kit.db import DATABASE, Database, DatabaseUnreachable
from services.kit.errors import error_middleware
from services.kit.faults import FaultRegistry
from services.kit.health import Check, Health
from services.kit.http_client import Upstream
from services.kit.http_server import fault_middleware, request_log_middleware, use_problem_answers_for_bad_http
from services.kit.logs import setup_logging
from services.kit.mtls import caller_middlewares, client_ssl, database_ssl, load_identity, public_ssl_context
from services.kit.tokens import VERIFIER, JwksVerifier
from services.kit.tracing import (
    http_client_trace_configs,
    http_server_middlewares,
    instrument_sqlalchemy,
    setup_tracing,
    shutdown_tracing,
    untraced,
)

Lifetime = Callable[["Service"], AsyncGenerator[None, None]]
Task = Callable[["Service"], Awaitable[None]]

# Longest time a replica waits for in-flight requests after SIGTERM before it closes them.
DRAIN_TIMEOUT_S = 10.0
# A background task that crashed starts again after this pause.
RESTART_PAUSE_S = 1.0
# The exit status of a replica whose database never answered (a supervisor or orchestrator restarts it).
DATABASE_UNREACHABLE_EXIT = 3


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__name__", "?")


class Service:
    """One replica of the service `facts` describes: its name, its default port (the native lab's), whether it
    owns a database, and whether its public port speaks HTTP (a gRPC service serves its own port from a lifetime,
    and the kit serves only the admin port)."""

    def __init__(self, facts: ServiceFacts) -> None:
        self.facts = facts
        self.name = name = facts.name
        try:
            self.config = CommonConfig.from_env(name, native_port(name))
        except ConfigError as exc:
            print(f"{name}: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self.public_http = not facts.is_grpc
        self.log = setup_logging(name, self.config.replica, self.config.log_level)
        self.tls = load_identity(name, self.log)  # mutual TLS (services/kit/mtls.py), None when not configured
        # Tracing first: its instrumentation patches aiohttp before any application or session exists.
        self._tracer_provider = setup_tracing(self.config)
        metrics.register_for(name)
        self.faults = FaultRegistry()
        self.health = Health(name, self.config.replica)
        self._metadata: list[MetaData] = []
        self._lifetimes: list[Lifetime] = []
        self._session: aiohttp.ClientSession | None = None
        self.verifier = JwksVerifier(self.config.auth_url, lambda: self.session)
        use_problem_answers_for_bad_http()
        # A body above MAX_BODY_BYTES is refused (413) before anything parses it.
        self.app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[
            *http_server_middlewares(), request_log_middleware(self.log, measure=self.config.instrumentation),
            error_middleware(self.log), *caller_middlewares(self.tls, name, self.log), fault_middleware(self.faults)])
        self.app[VERIFIER] = self.verifier
        self.admin = admin_app(token=self.config.admin_token, faults=self.faults, health=self.health, log=self.log)
        # The session first: the admin port already answers readiness checks, and the gateway's fetches the JWKS.
        self.lifetime(self._client_session)
        if self.tls is not None:
            self.lifetime(self.tls.lifetime)  # renewed certificates are loaded while the replica serves
        self.db: Database | None = None
        if facts.database:
            self.db = Database(self.config.database_url, ssl=database_ssl(self.tls, self.config.database_url))
            instrument_sqlalchemy(self.db.engine)
            self.app[DATABASE] = self.admin[DATABASE] = self.db
            self.add_readiness_check("database", self.db.ping)
            self.lifetime(self._database)

    # -- composition -----------------------------------------------------------------------------------
    def metadata(self, md: MetaData) -> None:
        """The service's tables: created at start (the kit's database lifetime), before the service's own lifetimes."""
        self._metadata.append(md)

    def add_readiness_check(self, name: str, check: Check, required: bool = True) -> None:
        self.health.add_check(name, check, required)

    def lifetime(self, fn: Lifetime) -> None:
        """`fn(svc)` is an async generator that opens a resource, yields once while the replica serves, and closes
        it. Entered in the order given, after the admin port opened and the kit's own (the client session, the
        tables) and before the public port opens (and traced: a server it starts hands that context to its
        handlers); exited in reverse after the in-flight requests drained."""
        self._lifetimes.append(fn)

    def background(self, fn: Task) -> None:
        """`fn(svc)` runs as a task for the replica's life (a lifetime of its own): started with the lifetimes,
        restarted after a pause if it crashes, cancelled when the lifetimes close."""

        async def in_background(svc: Service) -> AsyncGenerator[None, None]:
            async with svc.running(lambda: fn(svc), _name(fn)):
                yield

        in_background.__name__ = _name(fn)
        self.lifetime(in_background)

    @contextlib.asynccontextmanager
    async def running(self, fn: Callable[[], Awaitable[None]], name: str) -> AsyncIterator[None]:
        """`fn()` as a background task inside the block (restarted if it crashes), cancelled at its end."""
        task = asyncio.create_task(self._guard(fn, name), name=name)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The replica's one HTTP client session (the upstreams' and the JWKS fetches'), open while it serves."""
        if self._session is None:
            raise RuntimeError("the client session is open only while the replica serves (its lifetimes)")
        return self._session

    def upstream(self, service: ServiceFacts, *, timeout_s: float | None = None, retries: int = 2,
                 fail_max: int = 5, reset_s: float = 5.0) -> Upstream:
        """An HTTP upstream at its address variable (USERS_URL, ...), the native address by default."""
        return Upstream(service.name, upstream_address(service), lambda: self.session, self.faults,
                        timeout_s=timeout_s or self.config.upstream_timeout_s, retries=retries,
                        breaker=make_breaker(service.name, fail_max, reset_s))

    # -- the kit's own lifetimes ------------------------------------------------------------------------
    async def _database(self, _: Service) -> AsyncGenerator[None, None]:
        assert self.db is not None
        with untraced():  # schema creation is no request: no one-span traces of its statements
            # PostgreSQL may still be starting beside the replica (compose, Kubernetes): wait for it, bounded.
            await self.db.wait_reachable(self.config.db_connect_timeout_s, self.log)
            for md in self._metadata:
                await self.db.create_all(md)
        yield
        await self.db.close()

    def _new_session(self) -> aiohttp.ClientSession:
        # Connections to upstreams are reused; the limit keeps a slow upstream from eating every socket.
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, limit_per_host=100,
                                                                    ssl=client_ssl(self.tls)),
                                     trace_configs=http_client_trace_configs())

    async def _client_session(self, _: Service) -> AsyncGenerator[None, None]:
        self._session = self._new_session()
        retiring: set[asyncio.Task[None]] = set()

        def renew() -> None:
            # A kept-alive connection goes on presenting the certificate it was opened with, and a callee
            # authorizes a connection once: after a renewal (or a replaced identity) new calls take a new session,
            # and the old one closes once the calls on it are over (their timeout).
            old, self._session = self._session, self._new_session()
            task = asyncio.get_running_loop().create_task(_close_later(old, self.config.upstream_timeout_s + 1))
            retiring.add(task)
            task.add_done_callback(retiring.discard)

        if self.tls is not None:
            self.tls.on_reload(renew)
        yield
        for task in list(retiring):
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        await self._session.close()

    # -- lifecycle -------------------------------------------------------------------------------------
    def run(self) -> None:
        """Blocking: start, serve, and shut down gracefully on SIGTERM or SIGINT."""
        run_until_signalled(self.serve, self.log)

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Start, serve until `stop` is set, then shut down gracefully (`hurry` set: without the shutdown delay)."""
        admin_runner = web.AppRunner(self.admin, access_log=None)
        await admin_runner.setup()
        # The admin port opens first so that a supervisor sees the replica live while it starts.
        await web.TCPSite(admin_runner, self.config.host, self.config.admin_port).start()
        async with contextlib.AsyncExitStack() as lifetimes:
            public_runner: web.AppRunner | None = None
            async with _interrupted_by(stop) as interrupted:
                public_runner = await self._start(lifetimes)
            if not interrupted():
                await stop.wait()
                self.health.draining = True
                await self._shutdown_delay(hurry or asyncio.Event())
                self.log.info("stopping: draining in-flight requests")
                if public_runner is not None:
                    await public_runner.cleanup()  # stops accepting, then waits for in-flight handlers
            else:
                # Stopped while starting (e.g. still waiting for its database): what was opened closes below.
                self.log.info("stopping before the replica started")
        shutdown_tracing()
        await admin_runner.cleanup()
        self.log.info("stopped")

    async def _start(self, lifetimes: contextlib.AsyncExitStack) -> web.AppRunner | None:
        """Enter the lifetimes and open the public port (an HTTP service's): the replica serves from here."""
        for fn in self._lifetimes:
            await lifetimes.enter_async_context(self._entered(fn))
        public_runner: web.AppRunner | None = None
        if self.public_http:
            public_runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=DRAIN_TIMEOUT_S)
            await public_runner.setup()
            await web.TCPSite(public_runner, self.config.host, self.config.http_port, reuse_port=True,
                              ssl_context=public_ssl_context(self.tls, self.name)).start()
        self.health.serving = True
        self.log.info("started", http_port=self.config.http_port if self.public_http else None,
                      admin_port=self.config.admin_port)
        return public_runner

    async def _shutdown_delay(self, hurry: asyncio.Event) -> None:
        """Not ready, still serving: a load balancer, Kubernetes' endpoints or compose's DNS keeps sending for a
        moment after a replica starts to stop, and those requests would otherwise meet a closed port."""
        delay = self.config.shutdown_delay_s
        if delay <= 0:
            return
        self.log.info("stopping: not ready, still serving", delay_s=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), delay)

    @contextlib.asynccontextmanager
    async def _entered(self, fn: Lifetime) -> AsyncIterator[None]:
        """One lifetime, entered; its closing part runs at the end, and a failure there is logged, not raised,
        so that it does not stop the rest of the shutdown."""
        steps = fn(self)
        await anext(steps)
        try:
            yield
        finally:
            try:
                await anext(steps)
            except StopAsyncIteration:
                pass
            except Exception:  # noqa: BLE001 - a failing close must not stop the rest of the shutdown
                self.log.exception("shutdown hook failed", hook=_name(fn))
            else:
                await steps.aclose()
                self.log.error("a lifetime yielded more than once", hook=_name(fn))

    async def _guard(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a background task; if it crashes, log and restart it after a pause instead of dying silently."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                self.log.exception("background task crashed; restarting", task=name)
                await asyncio.sleep(RESTART_PAUSE_S)


def run_until_signalled(serve: Callable[[asyncio.Event, asyncio.Event], Awaitable[None]], log: Any) -> None:
    """Blocking: `serve(stop, hurry)` until SIGTERM or SIGINT sets `stop` (a second one sets `hurry`: Ctrl-C again cuts
    the shutdown delay short). A replica, or the monolith's process of six (services/monolith), runs this way; a
    database that never answered ends it with DATABASE_UNREACHABLE_EXIT and one line, no traceback."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop, hurry = asyncio.Event(), asyncio.Event()

        def signalled() -> None:
            (hurry if stop.is_set() else stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled)
        await serve(stop, hurry)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    except DatabaseUnreachable as exc:
        # One line that says what and where, no traceback: this is an environment's state, not a bug.
        log.error("giving up: database unreachable", error=str(exc))
        raise SystemExit(DATABASE_UNREACHABLE_EXIT) from None


async def _close_later(session: aiohttp.ClientSession, delay_s: float) -> None:
    try:
        await asyncio.sleep(delay_s)
    finally:
        await session.close()


@contextlib.asynccontextmanager
async def _interrupted_by(event: asyncio.Event) -> AsyncIterator[Callable[[], bool]]:
    """The block is cancelled when `event` is set, and the cancellation ends here; the value says whether it was.
    The block runs in the caller's own task (not a task of its own), so that what it enters, the lifetimes,
    closes in the context it was opened in."""
    task = asyncio.current_task()
    assert task is not None
    state = {"open": True, "interrupted": False}

    def interrupt(_: object) -> None:
        if state["open"]:  # a callback already queued when the block ended must not cancel what follows it
            state["interrupted"] = True
            task.cancel()

    waiter = asyncio.ensure_future(event.wait())
    waiter.add_done_callback(interrupt)
    try:
        yield lambda: state["interrupted"]
    except asyncio.CancelledError:
        # Ours to end only if our cancel is the task's only one (task.uncancel() counts them); else pass it on.
        if not state["interrupted"] or task.uncancel() > 0:
            raise
    finally:
        state["open"] = False
        waiter.remove_done_callback(interrupt)
        waiter.cancel()
