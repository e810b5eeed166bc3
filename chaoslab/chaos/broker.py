"""AMQP from an activity: publish a message, count and purge a queue. aio-pika under asyncio.run, because
Chaos Toolkit never awaits a coroutine: every function here is synchronous to its caller."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
from chaoslib.exceptions import ActivityFailed

from services.contract import EXCHANGE

CONNECT_TIMEOUT_S = 5.0


async def _publish(amqp_url: str, routing_key: str, body: bytes, message_id: str) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=CONNECT_TIMEOUT_S)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        message = aio_pika.Message(body=body, content_type="application/json", message_id=message_id,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT, app_id="chaoslab-chaos")
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


def publish(reg: dict[str, Any], routing_key: str, body: str) -> dict[str, Any]:
    message_id = f"poison-{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_publish(reg["broker"]["amqp_url"], routing_key, body.encode(), message_id))
    except (TimeoutError, aio_pika.exceptions.AMQPException, OSError) as exc:
        raise ActivityFailed(f"cannot publish to the broker: {exc!r}") from None
    return {"exchange": EXCHANGE, "routing_key": routing_key, "message_id": message_id, "bytes": len(body)}


async def _queue_op(amqp_url: str, queue: str, purge: bool) -> int:
    connection = await aio_pika.connect(amqp_url, timeout=CONNECT_TIMEOUT_S)
    async with connection:
        channel = await connection.channel()
        # passive: never create the queue (or change its arguments) from here
        declared = await channel.declare_queue(queue, passive=True)
        count = int(declared.declaration_result.message_count or 0)
        if purge:
            await declared.purge()
        return count


def queue_messages(reg: dict[str, Any], queue: str, *, purge: bool = False) -> int:
    """Messages ready in `queue` (before purging it, with `purge`)."""
    try:
        return asyncio.run(_queue_op(reg["broker"]["amqp_url"], queue, purge))
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return 0  # nobody declared it yet: it holds nothing
    except (TimeoutError, aio_pika.exceptions.AMQPException, OSError) as exc:
        raise ActivityFailed(f"cannot read queue {queue}: {exc!r}") from None
