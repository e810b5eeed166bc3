"""The transactional outbox's relay: publishes the events a service wrote into its outbox table, in the same
transaction as its own rows, to the broker.

Every replica runs one. A batch is claimed with a lease (UPDATE ... WHERE claimed_until < now, with FOR UPDATE SKIP
LOCKED on PostgreSQL) so replicas never publish the same event concurrently, and a relay that dies leaves its claim
to expire. An event is marked sent only after the broker confirmed it; a crash between confirm and mark republishes
it (at least once), and the consumer drops the duplicate by event id. While the broker is away the relay backs off
(worker.py) and the table holds the events.

The table is the service's own; it needs these columns: event_id (primary key), routing_key, payload (the message
body, text), headers (JSON: the W3C trace context of the request that wrote the event), created_at (unix seconds;
publishing order), claimed_until (float), claim_token (string, nullable), attempts (integer), sent_at (float,
nullable). `outbox_entry()` gives the values of a new row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aio_pika
from opentelemetry import trace
from sqlalchemy import Table, func, select, update

from services.kit import metrics
from services.kit.bus import declare_exchange, inject_trace_headers, publish_span
from services.kit.db import Database
from services.kit.tracing import untraced
from services.kit.worker import BrokerWorker

if TYPE_CHECKING:
    from services.kit.app import Service
    from services.kit.tls import Identity

PUBLISH_TIMEOUT_S = 10.0
BACKLOG_EVERY_S = 1.0


def outbox_entry(*, event_id: str, routing_key: str, payload: bytes, **columns: Any) -> dict[str, Any]:
    """The values of a new outbox row (insert it in the transaction that writes what the event is about); the
    current trace context goes with it, so that the publish joins the request's trace. `columns`: the table's own."""
    return {"event_id": event_id, "routing_key": routing_key, "payload": payload.decode(),
            "headers": inject_trace_headers({}), "created_at": time.time(), "claimed_until": 0.0, "attempts": 0,
            **columns}


class OutboxRelay(BrokerWorker):
    """Publishes `table`'s unsent events to `exchange` with publisher confirms, as `app_id`; the publish spans come
    from `tracer`."""

    retrying = "outbox relay: publish failed, retrying"

    def __init__(self, db: Database, table: Table, amqp_url: str, *, exchange: str, app_id: str,
                 tracer: trace.Tracer, log: Any, poll_s: float, batch: int = 100, lease_s: float = 10.0,
                 identity: Identity | None = None) -> None:
        # Close: the connection may be broken already. Stop: finish the batch in hand (nothing is published twice).
        super().__init__(amqp_url, log, close_timeout_s=2.0, stop_timeout_s=5.0, identity=identity)
        self.db = db
        self.table = table
        self.exchange_name = exchange
        self.app_id = app_id
        self.tracer = tracer
        self.poll_s = poll_s
        self.batch = batch
        self.lease_s = lease_s
        self.exchange: aio_pika.abc.AbstractExchange | None = None

    @property
    def broker_connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed and self.channel is not None

    async def lifetime(self, svc: Service) -> AsyncGenerator[None, None]:
        """The relay and the outbox_backlog reporter, for the replica's life."""
        async with svc.running(self.report_backlog, "report_backlog"), svc.running(self.run, "outbox_relay"):
            yield
            await self.stop()

    # -- the worker ------------------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        assert self.connection is not None
        # Returned (unroutable) messages raise: an event is not "sent" until a queue has it.
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await declare_exchange(self.channel)
        self.log.info("outbox relay connected to the broker")

    def _connected(self) -> bool:
        return self.exchange is not None and self.channel is not None and not self.channel.is_closed

    def _forget(self) -> None:
        self.exchange = None

    async def _work(self) -> float:
        # Connected before claiming: a broker outage claims nothing. A full round goes on at once.
        return 0.0 if await self.pump() else self.poll_s

    # -- one round -------------------------------------------------------------------------------------------------
    async def pump(self) -> int:
        """Claim one batch and publish it; returns how many events were confirmed."""
        assert self.exchange is not None
        exchange = self.exchange
        rows = await self._claim()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(exchange, r) for r in rows), return_exceptions=True)
        confirmed = [r.event_id for r, res in zip(rows, results, strict=True) if res is None]
        failed = [(r.event_id, res) for r, res in zip(rows, results, strict=True) if res is not None]
        if confirmed:
            outbox = self.table
            await self._write(update(outbox).where(outbox.c.event_id.in_(confirmed)).values(sent_at=time.time()))
            metrics.outbox_published_total.inc(len(confirmed))
        if failed:
            await self._release([eid for eid, _ in failed])
            first = failed[0][1]
            if isinstance(first, asyncio.CancelledError):
                raise first
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not confirmed: {first!r}") from first
        return len(confirmed)

    async def _claim(self) -> list[Any]:
        outbox = self.table
        now = time.time()
        token = str(uuid.uuid4())
        due = (
            select(outbox.c.event_id)
            .where(outbox.c.sent_at.is_(None), outbox.c.claimed_until < now)
            .order_by(outbox.c.created_at)
            .limit(self.batch)
        )
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        # Polls are housekeeping: untraced, or every empty poll would be a trace (the publish spans join the orders').
        with untraced():
            async with self.db.session(write=True) as session:
                result = await session.execute(
                    update(outbox)
                    .where(outbox.c.event_id.in_(due.scalar_subquery()), outbox.c.sent_at.is_(None))
                    .values(claimed_until=now + self.lease_s, claim_token=token, attempts=outbox.c.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 0:
                    return []
                rows = await session.execute(
                    select(outbox).where(outbox.c.claim_token == token).order_by(outbox.c.created_at)
                )
                return list(rows.all())

    async def _release(self, event_ids: list[str]) -> None:
        """Give unconfirmed events back at once (their lease need not run out first)."""
        outbox = self.table
        await self._write(update(outbox).where(outbox.c.event_id.in_(event_ids), outbox.c.sent_at.is_(None))
                          .values(claimed_until=0.0, claim_token=None))

    async def _write(self, statement: Any) -> None:
        with untraced():
            async with self.db.session(write=True) as session:
                await session.execute(statement)

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: Any) -> None:
        with publish_span(self.tracer, exchange=self.exchange_name, routing_key=row.routing_key,
                          message_id=row.event_id, parent_headers=row.headers):
            message = aio_pika.Message(
                body=row.payload.encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=row.event_id,
                type=row.routing_key,
                timestamp=datetime.now(UTC),
                app_id=self.app_id,
                headers=inject_trace_headers({}),
            )
            started = time.perf_counter()
            await asyncio.wait_for(exchange.publish(message, routing_key=row.routing_key, mandatory=True),
                                   PUBLISH_TIMEOUT_S)
            metrics.outbox_publish_duration_seconds.observe(time.perf_counter() - started)

    # -- the backlog -----------------------------------------------------------------------------------------------
    async def backlog(self) -> int:
        with untraced():
            async with self.db.session() as session:
                query = select(func.count()).where(self.table.c.sent_at.is_(None))
                return int((await session.execute(query)).scalar_one())

    async def report_backlog(self) -> None:
        """outbox_backlog, refreshed every second whatever the relay is doing (it may be backing off)."""
        while True:
            try:
                metrics.outbox_backlog.set(await self.backlog())
            except Exception as exc:  # noqa: BLE001 - the database check reports this; keep the last value
                self.log.debug("outbox backlog unknown", error=repr(exc))
            await asyncio.sleep(BACKLOG_EVERY_S)
