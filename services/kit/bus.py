"""The message bus (RabbitMQ through aio-pika): one topology for every service and mode, and the W3C
trace context carried in message headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from opentelemetry import context, propagate

EXCHANGE = "orders"
DLX = "orders.dlx"
QUEUE = "notifications.order-events"
DEAD_LETTER_QUEUE = "notifications.dead-letter"
ROUTING_PATTERN = "order.*"


@dataclass
class Topology:
    exchange: aio_pika.abc.AbstractExchange
    dead_letter_exchange: aio_pika.abc.AbstractExchange
    queue: aio_pika.abc.AbstractQueue
    dead_letter_queue: aio_pika.abc.AbstractQueue


async def connect_broker(amqp_url: str, *, timeout_s: float = 5.0) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection: aio-pika reconnects by itself and restores channels, exchanges and queues."""
    return await aio_pika.connect_robust(amqp_url, timeout=timeout_s, client_properties={
        "connection_name": "chaoslab"})


async def declare_topology(channel: aio_pika.abc.AbstractChannel, *, delivery_limit: int = 3) -> Topology:
    """Declare (idempotently) the orders exchange, the notifications queue and its dead-letter path.

    The queue is a quorum queue: RabbitMQ counts deliveries itself (x-delivery-limit) and dead-letters a
    message that was delivered too often, so a poison message cannot loop forever."""
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(DLX, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
    await dead.bind(dlx, routing_key="#")
    queue = await channel.declare_queue(QUEUE, durable=True, arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DLX,
    })
    await queue.bind(exchange, routing_key=ROUTING_PATTERN)
    return Topology(exchange, dlx, queue, dead)


def inject_trace_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The current trace context as message headers (traceparent, tracestate)."""
    carrier: dict[str, Any] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_trace_context(headers: dict[str, Any] | None) -> context.Context:
    """The trace context a message carries, to parent the consumer's span on the producer's."""
    carrier = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (headers or {}).items()}
    return propagate.extract(carrier)
