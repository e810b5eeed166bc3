"""notifications: consumes `order.*` events and stores a notification per event, exactly once per event id.

The kit's consumer (services/kit/consumer.py) runs the queue `notifications.order-events` (a quorum queue with
x-delivery-limit = DELIVERY_LIMIT and the dead-letter exchange `orders.dlx`), reconnects and drains on shutdown;
this module decides what a message means. It is acked after the notification and the processed-event row are
committed in one transaction. A duplicate event id is acked and counted; a message that cannot be processed is
nacked with requeue, and RabbitMQ dead-letters it to `notifications.dead-letter` once it was delivered
DELIVERY_LIMIT times.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aiohttp import web
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.contract import ANY_USER, ORDER_CREATED, ORDER_EVENTS_QUEUE, OrderEvent
from services.kit import metrics
from services.kit.app import Service
from services.kit.bus import process_span
from services.kit.config import env_int
from services.kit.consumer import Consumer
from services.kit.db import DATABASE, Database
from services.kit.tokens import Principal, authenticated
from services.kit.unrecorded import suppressed_if_unrecorded
from services.kit.validation import iso_utc, page

from .models import metadata, notifications, processed_events

tracer = trace.get_tracer("services.notifications")
log = structlog.get_logger(contract.NOTIFICATIONS.name)
routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()


def _count(outcome: str) -> None:
    metrics.consumer_messages_total.labels(ORDER_EVENTS_QUEUE, outcome).inc()


class Duplicate(Exception):
    """The event id was processed before."""


def _message(event: OrderEvent) -> str:
    amount = f"{event.total_cents / 100:.2f} {event.currency}"
    if event.type == ORDER_CREATED:
        return f"Your order {event.order_id} for {amount} is confirmed."
    return f"Update on your order {event.order_id} ({event.type})."


async def store(db: Database, event: OrderEvent) -> None:
    """The notification and the processed-event row, in one transaction; Duplicate when the event id has one."""
    now = datetime.now(UTC)
    notification_id = str(uuid.uuid4())
    try:
        async with db.session(write=True) as session:
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
        async with db.session(write=True) as session:
            result = await session.execute(
                update(processed_events)
                .where(processed_events.c.event_id == event.event_id)
                .values(duplicates=processed_events.c.duplicates + 1)
            )
        if result.rowcount == 0:  # not a duplicate after all: some other constraint failed
            raise
        raise Duplicate(event.event_id) from None


class OrderEvents:
    """The consumer's message handler: store, ack a duplicate, nack what cannot be processed (the queue dead-letters
    it after `delivery_limit` returns)."""

    def __init__(self, db: Database, delivery_limit: int) -> None:
        self.db = db
        self.delivery_limit = delivery_limit

    async def __call__(self, message: aio_pika.abc.AbstractIncomingMessage, deliveries: int) -> None:
        with process_span(tracer, ORDER_EVENTS_QUEUE, message, deliveries) as span, suppressed_if_unrecorded():
            # an unrecorded order: its statements need no spans either
            try:
                event = OrderEvent.model_validate(json.loads(message.body))
                await store(self.db, event)
            except Duplicate:
                await message.ack()
                _count("duplicate")
                log.info("duplicate event acked", event_id=message.message_id)
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
        metrics.consumer_last_success_timestamp_seconds.labels(ORDER_EVENTS_QUEUE).set(time.time())
        log.info("notification stored", event_id=event.event_id, order_id=event.order_id)

    async def _reject(
        self, message: aio_pika.abc.AbstractIncomingMessage, deliveries: int, why: str, exc: BaseException
    ) -> None:
        # Requeue: RabbitMQ counts the delivery and dead-letters the message after DELIVERY_LIMIT deliveries.
        await message.nack(requeue=True)
        _count("failed")
        last = deliveries > self.delivery_limit
        if last:
            _count("dead_lettered")
        log.warning(
            "message nacked",
            reason=why,
            error=repr(exc)[:300],
            message_id=message.message_id,
            deliveries=deliveries,
            dead_lettered=last,
        )


def notification_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "order_id": row.order_id,
        "event_id": row.event_id,
        "kind": row.kind,
        "message": row.message,
        "created_at": iso_utc(row.created_at),
    }


@routes.get("/notifications")
@authenticated(roles=ANY_USER)
async def list_notifications(request: web.Request) -> web.Response:
    principal: Principal = request["principal"]
    query = page(request).of(
        select(notifications)
        .where(notifications.c.user_id == principal.user_id)
        .order_by(notifications.c.created_at.desc(), notifications.c.id)
    )
    rows = await request.app[DATABASE].rows(query)
    return web.json_response({"items": [notification_view(r) for r in rows]})


@admin_routes.get("/admin/audit")
async def audit(request: web.Request) -> web.Response:
    events = processed_events.c
    rows = await request.app[DATABASE].rows(
        select(events.event_id, events.order_id, events.duplicates,
               func.count(notifications.c.id).label("notifications"))
        .select_from(processed_events.outerjoin(notifications, notifications.c.event_id == events.event_id))
        .group_by(events.event_id, events.order_id, events.duplicates)
        .order_by(events.event_id)
    )
    items = [
        {"event_id": r.event_id, "order_id": r.order_id, "notifications": r.notifications, "duplicates": r.duplicates}
        for r in rows
    ]
    return web.json_response(
        {
            "service": contract.NOTIFICATIONS.name,
            "count": len(items),
            "notifications": sum(i["notifications"] for i in items),
            "duplicates": sum(i["duplicates"] for i in items),
            "items": items,
        }
    )


def create_service() -> Service:
    svc = Service(contract.NOTIFICATIONS)
    svc.metadata(metadata)
    delivery_limit = max(1, env_int("DELIVERY_LIMIT", 3))
    consumer = Consumer(svc.config.amqp_url, OrderEvents(svc.app[DATABASE], delivery_limit),
                        delivery_limit=delivery_limit, prefetch=max(1, env_int("PREFETCH", 20)), log=svc.log,
                        identity=svc.tls)

    async def consuming() -> bool:
        return consumer.consuming

    svc.lifetime(consumer.lifetime)
    # Required: a replica that cannot consume does nothing useful; readiness says so.
    svc.add_readiness_check("broker", consuming, required=True)
    svc.app.add_routes(routes)
    svc.admin.add_routes(admin_routes)
    return svc


def main() -> None:
    create_service().run()
