"""notifications: consumes `order.*` events and stores a notification per event, exactly once per event id.

The queue is the quorum queue `notifications.order-events` (declared by the kit's declare_topology with
x-delivery-limit = DELIVERY_LIMIT and the dead-letter exchange `orders.dlx`). Messages are acked by hand after
the notification and the processed-event row are committed in one transaction. A duplicate event id is acked
and counted; a message that cannot be processed is nacked with requeue, and RabbitMQ dead-letters it to
`notifications.dead-letter` once it was delivered DELIVERY_LIMIT times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aiohttp import web
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.kit import metrics
from services.kit.app import Service
from services.kit.bus import QUEUE, connect_broker, declare_topology, extract_trace_context
from services.kit.config import env_int
from services.kit.tokens import Principal, authenticated
from services.kit.unrecorded import suppressed_if_unrecorded
from services.kit.validation import iso_utc, query_int

from .models import OrderEvent, metadata, notifications, processed_events

ANY_USER = ("customer", "admin")
MAX_PAGE = 500

tracer = trace.get_tracer("services.notifications")




def _count(outcome: str) -> None:
    metrics.consumer_messages_total.labels(QUEUE, outcome).inc()


class Duplicate(Exception):
    """The event id was processed before."""


class Consumer:
    """One consumer per replica, with its own connection. It reconnects with backoff when the broker goes away
    (the unacked messages return to the queue and are redelivered: the processed-event row makes that safe)."""

    def __init__(self, svc: Service, *, delivery_limit: int, prefetch: int) -> None:
        self.svc = svc
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None
        self.consumer_tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    @property
    def consuming(self) -> bool:
        return (
            self.consumer_tag is not None
            and self.connection is not None
            and not self.connection.is_closed
            and self.channel is not None
            and not self.channel.is_closed
        )

    # -- message handling ------------------------------------------------------------------------------
    async def _store(self, event: OrderEvent) -> None:
        now = datetime.now(UTC)
        notification_id = str(uuid.uuid4())
        try:
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    processed_events.insert().values(
                        event_id=event.event_id,
                        order_id=event.order_id,
                        notification_id=notification_id,
                        duplicates=0,
                        processed_at=now,
                    )
                )
                await session.execute(
                    notifications.insert().values(
                        id=notification_id,
                        user_id=event.user_id,
                        order_id=event.order_id,
                        event_id=event.event_id,
                        kind=event.type,
                        message=_message(event),
                        created_at=now,
                    )
                )
        except IntegrityError:
            async with self.svc.db.session(write=True) as session:
                result = await session.execute(
                    update(processed_events)
                    .where(processed_events.c.event_id == event.event_id)
                    .values(duplicates=processed_events.c.duplicates + 1)
                )
            if result.rowcount == 0:  # not a duplicate after all: some other constraint failed
                raise
            raise Duplicate(event.event_id) from None

    async def handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        headers = dict(message.headers or {})
        deliveries = int(headers.get("x-delivery-count", 0) or 0) + 1  # quorum queues count returns
        if message.redelivered or deliveries > 1:
            _count("redelivered")
        with tracer.start_as_current_span(
            f"{QUEUE} process",
            context=extract_trace_context(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": QUEUE,
                "messaging.message.id": message.message_id or "",
                "messaging.rabbitmq.delivery_count": deliveries,
            },
        ) as span, suppressed_if_unrecorded():  # an unrecorded order: its statements need no spans either
            try:
                event = OrderEvent.model_validate(json.loads(message.body))
                await self._store(event)
            except Duplicate:
                await message.ack()
                _count("duplicate")
                self.svc.log.info("duplicate event acked", event_id=message.message_id)
                return
            except (ValueError, ValidationError, UnicodeDecodeError) as exc:
                await self._reject(message, deliveries, "malformed", exc)
                span.set_status(trace.StatusCode.ERROR, "malformed message")
                return
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: try again later
                await self._reject(message, deliveries, "failed", exc)
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, "processing failed")
                return
            await message.ack()
        _count("processed")
        metrics.notifications_delivered_total.inc()
        metrics.consumer_last_success_timestamp_seconds.labels(QUEUE).set(time.time())
        self.svc.log.info("notification stored", event_id=event.event_id, order_id=event.order_id)

    async def _reject(
        self, message: aio_pika.abc.AbstractIncomingMessage, deliveries: int, why: str, exc: BaseException
    ) -> None:
        # Requeue: RabbitMQ counts the delivery and dead-letters the message after DELIVERY_LIMIT deliveries.
        await message.nack(requeue=True)
        _count("failed")
        last = deliveries > self.delivery_limit
        if last:
            _count("dead_lettered")
        self.svc.log.warning(
            "message nacked",
            reason=why,
            error=repr(exc)[:300],
            message_id=message.message_id,
            deliveries=deliveries,
            dead_lettered=last,
        )

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.handle(message)
        except Exception:  # noqa: BLE001 - e.g. the channel closed under us; the broker will redeliver
            self.svc.log.exception("message handling failed", message_id=message.message_id)
        finally:
            if task is not None:
                self._inflight.discard(task)

    # -- connection lifecycle --------------------------------------------------------------------------
    async def _start(self) -> None:
        self.connection = await connect_broker(self.svc.config.amqp_url)
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.prefetch)
        topology = await declare_topology(self.channel, delivery_limit=self.delivery_limit)
        self.queue = topology.queue
        self.consumer_tag = await self.queue.consume(self._on_message, no_ack=False)
        self.svc.log.info("consuming", queue=QUEUE, prefetch=self.prefetch, delivery_limit=self.delivery_limit)

    async def _close(self) -> None:
        connection = self.connection
        self.connection, self.channel, self.queue, self.consumer_tag = None, None, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 3.0)

    async def run(self, svc: Service) -> None:
        backoff = 0.2
        try:
            while not self._stopping.is_set():
                try:
                    if not self.consuming:
                        await self._close()
                        await self._start()
                        backoff = 0.2
                    await self._sleep(0.5)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - broker unreachable: retry with backoff
                    svc.log.warning("consumer: broker unavailable, retrying", error=repr(exc), backoff_s=backoff)
                    await self._close()
                    await self._sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, 5.0)
        finally:
            if not self._stopping.is_set():  # cancelled; on a graceful stop, stop() closes after the drain
                await self._close()
            self._stopped.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        """Graceful: stop taking messages, let the in-flight ones finish (ack), then close the connection."""
        started = time.perf_counter()
        self._stopping.set()
        if self.queue is not None and self.consumer_tag is not None:
            try:
                await asyncio.wait_for(self.queue.cancel(self.consumer_tag), 3.0)
            except (Exception, asyncio.CancelledError) as exc:
                # aiormq reports a channel that closed under the call as CancelledError; only a cancellation of
                # this task is ours to pass on. Closing the connection below stops deliveries anyway.
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                    raise
                self.svc.log.warning("consumer cancel failed", error=repr(exc))
        inflight = len(self._inflight)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), 2.0)
        await self._close()
        self.svc.log.info(
            "consumer stopped",
            inflight_at_stop=inflight,
            unfinished=len(self._inflight),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )


def _message(event: OrderEvent) -> str:
    amount = f"{event.total_cents / 100:.2f} {event.currency}"
    if event.type == "order.created":
        return f"Your order {event.order_id} for {amount} is confirmed."
    return f"Update on your order {event.order_id} ({event.type})."


def notification_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "event_id": row.event_id,
        "kind": row.kind,
        "message": row.message,
        "created_at": iso_utc(row.created_at),
    }




def create_service() -> Service:
    svc = Service(contract.NOTIFICATIONS)
    svc.metadata(metadata)
    consumer = Consumer(
        svc,
        delivery_limit=max(1, env_int("DELIVERY_LIMIT", 3)),
        prefetch=max(1, env_int("PREFETCH", 20)),
    )

    @authenticated(roles=ANY_USER)
    async def list_notifications(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        offset = query_int(request, "offset", 0, 0, 10**9)
        async with svc.db.session() as session:
            rows = (
                await session.execute(
                    select(notifications)
                    .where(notifications.c.user_id == principal.user_id)
                    .order_by(notifications.c.created_at.desc(), notifications.c.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return web.json_response({"items": [notification_view(r) for r in rows]})

    async def audit(request: web.Request) -> web.Response:
        async with svc.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        processed_events.c.event_id,
                        processed_events.c.order_id,
                        processed_events.c.duplicates,
                        func.count(notifications.c.id).label("notifications"),
                    )
                    .select_from(
                        processed_events.outerjoin(
                            notifications, notifications.c.event_id == processed_events.c.event_id
                        )
                    )
                    .group_by(processed_events.c.event_id, processed_events.c.order_id, processed_events.c.duplicates)
                    .order_by(processed_events.c.event_id)
                )
            ).all()
        items = [
            {
                "event_id": r.event_id,
                "order_id": r.order_id,
                "notifications": r.notifications,
                "duplicates": r.duplicates,
            }
            for r in rows
        ]
        return web.json_response(
            {
                "service": "notifications",
                "count": len(items),
                "notifications": sum(i["notifications"] for i in items),
                "duplicates": sum(i["duplicates"] for i in items),
                "items": items,
            }
        )

    async def broker_check() -> bool:
        return consumer.consuming

    async def stop_consuming(svc: Service) -> AsyncGenerator[None, None]:
        yield
        await consumer.stop()

    svc.app.router.add_get("/notifications", list_notifications)
    svc.admin.router.add_get("/admin/audit", audit)
    svc.background(consumer.run)
    svc.lifetime(stop_consuming)  # closes before the consumer's task is cancelled: it drains
    # Required: a replica that cannot consume does nothing useful; readiness says so.
    svc.add_readiness_check("broker", broker_check, required=True)
    return svc


def main() -> None:
    create_service().run()
