"""The service factory: every replica gets the same public/admin ports, health, metrics, tracing, logs,
faults, errors and graceful shutdown, so that a service's own module holds only its business logic."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from sqlalchemy import MetaData

from services.kit import metrics
from services.kit.admin import admin_app
from services.kit.appkeys import SERVICE
from services.kit.breaker import make_breaker
from services.kit.config import CommonConfig, ConfigError
from services.kit.db import Database
from services.kit.errors import error_middleware
from services.kit.faults import FaultRegistry
from services.kit.health import Check, Health
from services.kit.http_client import Upstream
from services.kit.http_server import fault_middleware, request_log_middleware
from services.kit.logs import setup_logging
from services.kit.tokens import JwksVerifier
from services.kit.tracing import (
    http_client_trace_configs,
    http_server_middlewares,
    instrument_sqlalchemy,
    setup_tracing,
    shutdown_tracing,
    untraced,
)

Hook = Callable[["Service"], Awaitable[None]]

# Longest time a replica waits for in-flight requests after SIGTERM before it closes them.
DRAIN_TIMEOUT_S = 10.0


class Service:
    """One replica of a service. `uses_broker` is informational (the service talks to RabbitMQ); the kit does
    not instrument aio-pika for it, because orders and notifications make their own producer and consumer spans
    around the kit's trace-header helpers, and a second instrumentation would double them."""

    def __init__(self, name: str, default_port: int, *, uses_db: bool = True, uses_broker: bool = False,
                 public_http: bool = True) -> None:
        self.name = name
        try:
            self.config = CommonConfig.from_env(name, default_port)
        except ConfigError as exc:
            print(f"{name}: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self.uses_broker = uses_broker
        self.public_http = public_http
        self.log = setup_logging(name, self.config.replica, self.config.log_level)
        # Tracing first: its instrumentation patches aiohttp before any application or session exists.
        self._tracer_provider = setup_tracing(self.config)
        metrics.register_for(name)
        self.faults = FaultRegistry()
        self.db: Database | None = Database(self.config.database_url) if uses_db else None
        if self.db is not None:
            instrument_sqlalchemy(self.db.engine)
        self._metadata: list[MetaData] = []
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._background: list[Hook] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._verifier: JwksVerifier | None = None
        self.health = Health(name, self.config.replica)
        self.app = web.Application(middlewares=[
            *http_server_middlewares(), request_log_middleware(self.log, measure=self.config.instrumentation),
            error_middleware(self.log), fault_middleware(self.faults)])
        self.app[SERVICE] = self
        self.admin = admin_app(token=self.config.admin_token, faults=self.faults, health=self.health, log=self.log)
        self.admin[SERVICE] = self
        if self.db is not None:
            self.add_readiness_check("database", self.db.ping)

    # -- composition -----------------------------------------------------------------------------------
    def metadata(self, md: MetaData) -> None:
        self._metadata.append(md)

    def add_readiness_check(self, name: str, check: Check, required: bool = True) -> None:
        self.health.add_check(name, check, required)

    def on_startup(self, hook: Hook) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        self._shutdown.append(hook)

    def background(self, hook: Hook) -> None:
        self._background.append(hook)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Connections to upstreams are reused; the limit keeps a slow upstream from eating every socket.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, limit_per_host=100),
                                                  trace_configs=http_client_trace_configs())
        return self._session

    def upstream(self, name: str, base_url: str, *, timeout_s: float | None = None, retries: int = 2,
                 fail_max: int = 5, reset_s: float = 5.0) -> Upstream:
        return Upstream(name, base_url, lambda: self.session, self.faults,
                        timeout_s=timeout_s or self.config.upstream_timeout_s, retries=retries,
                        breaker=make_breaker(name, fail_max, reset_s))

    @property
    def verifier(self) -> JwksVerifier:
        if self._verifier is None:
            self._verifier = JwksVerifier(self.config.auth_url, lambda: self.session)
        return self._verifier

    # -- lifecycle -------------------------------------------------------------------------------------
    def run(self) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        admin_runner = web.AppRunner(self.admin, access_log=None)
        await admin_runner.setup()
        # The admin port opens first so that a supervisor sees the replica live while it starts.
        await web.TCPSite(admin_runner, self.config.host, self.config.admin_port).start()
        if self.db is not None:
            with untraced():  # schema creation is no request: no one-span traces of its statements
                for md in self._metadata:
                    await self.db.create_all(md)
        # Startup hooks run traced: a server they start (payments' gRPC) hands this context to its handlers.
        for hook in self._startup:
            await hook(self)
        public_runner: web.AppRunner | None = None
        if self.public_http:
            public_runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=DRAIN_TIMEOUT_S)
            await public_runner.setup()
            await web.TCPSite(public_runner, self.config.host, self.config.http_port, reuse_port=True).start()
        for hook in self._background:
            self._tasks.append(asyncio.create_task(self._guard(hook), name=getattr(hook, "__name__", "task")))
        self.health.serving = True
        self.log.info("started", http_port=self.config.http_port if self.public_http else None,
                      admin_port=self.config.admin_port)

        await stop.wait()
        self.log.info("stopping: draining in-flight requests")
        self.health.draining = True
        if public_runner is not None:
            await public_runner.cleanup()  # stops accepting, then waits for in-flight handlers
        for hook in self._shutdown:
            try:
                await hook(self)
            except Exception:  # noqa: BLE001 - a failing hook must not stop the rest of the shutdown
                self.log.exception("shutdown hook failed", hook=getattr(hook, "__name__", str(hook)))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.db is not None:
            await self.db.close()
        shutdown_tracing()
        await admin_runner.cleanup()
        self.log.info("stopped")

    async def _guard(self, hook: Hook) -> None:
        """Run a background task; if it crashes, log and restart it after a pause instead of dying silently."""
        while True:
            try:
                await hook(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                self.log.exception("background task crashed; restarting", task=getattr(hook, "__name__", "?"))
                await asyncio.sleep(1.0)
