"""AMQP from an activity: publish a message, count and purge a queue. aio-pika under asyncio.run, because
Chaos Toolkit never awaits a coroutine: every function here is synchronous to its caller."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
from chaoslib.exceptions import ActivityFailed

from chaoslab.lab.certs import operator_ssl_context
from services.contract import EXCHANGE

CONNECT_TIMEOUT_S = 5.0


def _connect(reg: dict[str, Any]) -> Any:
    """A connection as the lab's tools: over mutual TLS with their own certificate (a lab's registry says so), whose
    broker permissions allow publishing to the order events exchange and reading its queues, and nothing else."""
    return aio_pika.connect(reg["broker"]["amqp_url"], timeout=CONNECT_TIMEOUT_S,
                            ssl_context=operator_ssl_context(reg))


async def _publish(reg: dict[str, Any], routing_key: str, body: bytes, message_id: str) -> None:
    connection = await _connect(reg)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        message = aio_pika.Message(body=body, content_type="application/json", message_id=message_id,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT, app_id="chaoslab-chaos")
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


def publish(reg: dict[str, Any], routing_key: str, body: str) -> dict[str, Any]:
    message_id = f"poison-{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_publish(reg, routing_key, body.encode(), message_id))
    except (TimeoutError, aio_pika.exceptions.AMQPException, OSError) as exc:
        raise ActivityFailed(f"cannot publish to the broker: {exc!r}") from None
    return {"exchange": EXCHANGE, "routing_key": routing_key, "message_id": message_id, "bytes": len(body)}


async def _queue_op(reg: dict[str, Any], queue: str, purge: bool) -> int:
    connection = await _connect(reg)
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
        return asyncio.run(_queue_op(reg, queue, purge))
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return 0  # nobody declared it yet: it holds nothing
    except (TimeoutError, aio_pika.exceptions.AMQPException, OSError) as exc:
        raise ActivityFailed(f"cannot read queue {queue}: {exc!r}") from None
