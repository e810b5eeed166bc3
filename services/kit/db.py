"""Each service's own database through SQLAlchemy (async): SQLite (WAL, shared by the replicas of one
service) by default, PostgreSQL by DSN."""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ssl import SSLContext
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import Executable, MetaData, Row, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from services.kit import metrics
from services.kit.errors import ApiError

STORAGE_FULL_TYPE = "https://chaoslab.dev/problems/storage-full"
STORAGE_FULL_RETRY_S = 5


def storage_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full", ENOSPC under it) or PostgreSQL's disk_full (53100)."""
    orig = getattr(exc, "orig", None)
    return "database or disk is full" in str(orig or exc) or getattr(orig, "sqlstate", None) == "53100"


def storage_full_error(exc: BaseException) -> ApiError:
    """What a client gets when a write finds the service's storage full: 503, retry later; nothing was written
    (the transaction rolled back), and the log has the database's own message."""
    metrics.db_storage_full_total.inc()
    structlog.get_logger("db").error("storage full: write refused", error=str(getattr(exc, "orig", exc))[:300])
    return ApiError(503, "Service Unavailable", "the service's storage is full: nothing was written, try again later",
                    type=STORAGE_FULL_TYPE, headers={"Retry-After": str(STORAGE_FULL_RETRY_S)})

# Waiting for a database at start (compose and Kubernetes start PostgreSQL beside the services): the pause between
# attempts doubles from the first to the last, jittered, and one attempt gives up after ATTEMPT_TIMEOUT_S (asyncpg's
# own connect timeout is 60 s, longer than the whole wait, and a dropped SYN would hang there).
FIRST_RETRY_S = 0.25
LAST_RETRY_S = 4.0
ATTEMPT_TIMEOUT_S = 5.0
# PostgreSQL's "the database system is starting up" and "too many connections": both pass on their own.
_TRANSIENT_SQLSTATES = frozenset({"57P03", "53300"})


class DatabaseUnreachable(Exception):
    """The database did not take a connection in time, or refused it for good (a wrong password, no such
    database). The message names the database without its password and says why; it carries no traceback."""


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`) and its causes, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        context = None if current.__suppress_context__ else current.__context__
        current = getattr(current, "orig", None) or current.__cause__ or context
    return seen


def transient(exc: BaseException) -> bool:
    """True for a failure that a database still starting gives: refused, unresolvable (compose's DNS has no name
    for a container that is not up yet), timed out, or PostgreSQL starting up; False for one that waiting does not
    cure (authentication, a missing database or role)."""
    return any(isinstance(cause, OSError) or getattr(cause, "sqlstate", None) in _TRANSIENT_SQLSTATES
               for cause in _causes(exc))


def _reason(exc: BaseException, password: str | None) -> str:
    """The innermost failure as `Type: message`, without the password (a driver may quote its DSN)."""
    cause = _causes(exc)[-1]
    text = f"{type(cause).__name__}: {cause}"[:300] if str(cause) else type(cause).__name__
    return text.replace(password, "***") if password else text


# SQLite: a write transaction must take the write lock when it begins (BEGIN IMMEDIATE); a deferred
# transaction that upgrades from read to write fails at once with "database is locked" when another
# replica holds the lock, whatever the busy timeout.
_write_tx: contextvars.ContextVar[bool] = contextvars.ContextVar("write_tx", default=False)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, ssl: SSLContext | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            kwargs["connect_args"] = {"timeout": 15}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
            if ssl is not None:  # PostgreSQL over TLS with this context (mutual: services/kit/mtls.py)
                kwargs["connect_args"] = {"ssl": ssl}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time anyway. Two write transactions of one process that meet inside
        # SQLite can stall each other for the whole busy timeout (seen under load: one connection held the
        # write lock while its INSERT and a sibling's BEGIN IMMEDIATE both waited 15 s, and every gRPC charge
        # behind them timed out). So a process queues its own writers here, in order and cancellably, and
        # only writers of other replicas meet in SQLite's busy handler.
        self._writer = asyncio.Lock() if self.is_sqlite else None
        self._install_events()

    def _install_events(self) -> None:
        sync_engine = self.engine.sync_engine
        if self.is_sqlite:
            @event.listens_for(sync_engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
                # Take transaction control from the driver so that "begin" below decides the mode.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=15000")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(sync_engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                if _write_tx.get():
                    # Through SQLAlchemy, so traced and timed: its duration is the wait for the write lock.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                # A read's BEGIN takes no lock and no time: straight to the driver, no span, no metric sample.
                cursor = conn.connection.cursor()
                try:
                    cursor.execute("BEGIN")
                finally:
                    cursor.close()

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("query_start", []).append(time.perf_counter())

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started = conn.info["query_start"].pop()
            operation = statement.lstrip().split(" ", 1)[0].lower()
            if operation not in ("select", "insert", "update", "delete"):
                operation = "other"
            metrics.db_query_duration_seconds.labels(operation).observe(time.perf_counter() - started)

    @asynccontextmanager
    async def session(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success; pass write=True for transactions that write."""
        if write and self._writer is not None:
            async with self._writer, self._transaction(write) as session:
                yield session
        else:
            async with self._transaction(write) as session:
                yield session

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[AsyncSession]:
        token = _write_tx.set(write)
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except DBAPIError as exc:
            # A full disk is the operator's problem, not the client's and not a bug: 503 with a problem that says
            # so, never a 500 with "the error was logged" (found by the disk-full fault, chaos/disk-full-orders)
            if storage_full(exc):
                raise storage_full_error(exc) from exc
            raise
        finally:
            _write_tx.reset(token)

    async def rows(self, statement: Executable) -> list[Row[Any]]:
        """Every row a read returns, in a transaction of its own."""
        async with self.session() as session:
            return list((await session.execute(statement)).all())

    async def first(self, statement: Executable) -> Row[Any] | None:
        """The first row a read returns, or None, in a transaction of its own."""
        async with self.session() as session:
            return (await session.execute(statement)).first()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def wait_reachable(self, timeout_s: float, log: Any) -> None:
        """Return once the database answers; until then retry with a jittered, doubling pause, for `timeout_s` at
        most. Raises DatabaseUnreachable when time runs out or the database refuses the connection for good."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        password = make_url(self.url).password
        pause, attempt = FIRST_RETRY_S, 0
        while True:
            attempt += 1
            try:
                await asyncio.wait_for(self.ping(), max(min(ATTEMPT_TIMEOUT_S, deadline - loop.time()), 0.1))
            except Exception as exc:  # noqa: BLE001 - classified below: waited for, or given up on with its reason
                reason = _reason(exc, str(password) if password else None)
                waited = round(loop.time() - started, 1)
                if not transient(exc):
                    raise DatabaseUnreachable(f"the database {self.safe_url} refused the connection ({reason})") \
                        from None
                if loop.time() >= deadline:
                    raise DatabaseUnreachable(f"the database {self.safe_url} did not answer within {timeout_s:g} s "
                                              f"({attempt} attempts; last: {reason})") from None
                sleep = min(pause * random.uniform(0.5, 1.0), max(deadline - loop.time(), 0.0))
                log.warning("database not reachable yet; retrying", database=self.safe_url, attempt=attempt,
                            waited_s=waited, retry_in_s=round(sleep, 2), error=reason)
                await asyncio.sleep(sleep)
                pause = min(pause * 2, LAST_RETRY_S)
                continue
            if attempt > 1:
                log.info("database reachable", database=self.safe_url, attempts=attempt,
                         waited_s=round(loop.time() - started, 1))
            return

    async def create_all(self, metadata: MetaData) -> None:
        # Replicas of one service start together on one database: a losing CREATE TABLE is retried,
        # and the retry finds the table there.
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(6),
            wait=wait_random_exponential(multiplier=0.1, max=2),
            retry=retry_if_exception_type(DBAPIError),
            reraise=True,
        ):
            with attempt:
                token = _write_tx.set(True)
                try:
                    async with self.engine.begin() as conn:
                        await conn.run_sync(metadata.create_all)
                finally:
                    _write_tx.reset(token)

    async def close(self) -> None:
        await self.engine.dispose()


DATABASE = web.AppKey("database", Database)
