"""The message bus (RabbitMQ through aio-pika): the connection, one topology for every service and mode (names from
services/contract.py), and the W3C trace context carried in message headers, with the producer and consumer spans
that use it (the kit makes these itself rather than through an aio-pika instrumentation, which would double them)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
from opentelemetry import context, propagate, trace

from services.contract import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EXCHANGE,
    ORDER_EVENTS_PATTERN,
    ORDER_EVENTS_QUEUE,
)
from services.kit.config import env_int


@dataclass
class Topology:
    exchange: aio_pika.abc.AbstractExchange
    dead_letter_exchange: aio_pika.abc.AbstractExchange
    queue: aio_pika.abc.AbstractQueue
    dead_letter_queue: aio_pika.abc.AbstractQueue


# AMQP heartbeats, in seconds: aiormq sends one every half of it and gives a connection up after 3 x (it + 1) s
# without a frame; RabbitMQ after two missed ones. aiormq's default (60, so 183 s) let a partitioned broker go
# unnoticed for three minutes: the consumer kept reporting itself ready, and the broker held the unacked messages
# of a consumer that could no longer ack them (found by the broker-partition fault, chaos/broker-partition.json).
DEFAULT_HEARTBEAT_S = 5


async def connect_broker(amqp_url: str, *, timeout_s: float = 5.0,
                         ssl_context: ssl.SSLContext | None = None) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection: aio-pika reconnects by itself and restores channels, exchanges and queues. Heartbeats
    every AMQP_HEARTBEAT_S / 2 s: a dead connection (a partition, a frozen broker) is noticed within
    3 x (AMQP_HEARTBEAT_S + 1) s (18 s by default) and reconnected.

    Over mutual TLS (`amqps://...?auth=external` and this replica's client context, services.kit.tls) the broker
    checks the replica's certificate and takes its SPIFFE ID as the user name (SASL EXTERNAL: no password exists);
    the replica checks the broker's certificate against the CA and the broker's address. A reconnect uses the
    same context, which holds the latest renewed certificate."""
    return await aio_pika.connect_robust(amqp_url, timeout=timeout_s, ssl_context=ssl_context,
                                         heartbeat=env_int("AMQP_HEARTBEAT_S", DEFAULT_HEARTBEAT_S),
                                         client_properties={"connection_name": "chaoslab"})


async def declare_exchange(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractExchange:
    """The order events exchange (topic, durable): what a producer needs."""
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_topology(channel: aio_pika.abc.AbstractChannel, *, delivery_limit: int = 3) -> Topology:
    """Declare (idempotently) the orders exchange, the notifications queue and its dead-letter path.

    The queue is a quorum queue: RabbitMQ counts deliveries itself (x-delivery-limit) and dead-letters a
    message that was delivered too often, so a poison message cannot loop forever."""
    exchange = await declare_exchange(channel)
    dlx = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
    await dead.bind(dlx, routing_key="#")
    queue = await channel.declare_queue(ORDER_EVENTS_QUEUE, durable=True, arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    })
    await queue.bind(exchange, routing_key=ORDER_EVENTS_PATTERN)
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


def delivery_count(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    """Which delivery of the message this is: 1 for the first; quorum queues count the returns (x-delivery-count)."""
    return int(dict(message.headers or {}).get("x-delivery-count", 0) or 0) + 1


@contextmanager
def _messaging_span(tracer: trace.Tracer, name: str, kind: trace.SpanKind, headers: dict[str, Any] | None,
                    attributes: dict[str, Any]) -> Iterator[trace.Span]:
    with tracer.start_as_current_span(name, context=extract_trace_context(headers), kind=kind,
                                      attributes={"messaging.system": "rabbitmq", **attributes}) as span:
        yield span


def publish_span(tracer: trace.Tracer, *, exchange: str, routing_key: str, message_id: str,
                 parent_headers: dict[str, Any] | None) -> AbstractContextManager[trace.Span]:
    """The producer span of one publish, a child of the trace in `parent_headers` (the request that made it)."""
    return _messaging_span(tracer, f"{exchange} publish", trace.SpanKind.PRODUCER, parent_headers, {
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
    })


def process_span(tracer: trace.Tracer, queue: str, message: aio_pika.abc.AbstractIncomingMessage,
                 deliveries: int) -> AbstractContextManager[trace.Span]:
    """The consumer span of one message, a child of the trace its headers carry (the producer's)."""
    return _messaging_span(tracer, f"{queue} process", trace.SpanKind.CONSUMER, dict(message.headers or {}), {
        "messaging.destination.name": queue,
        "messaging.message.id": message.message_id or "",
        "messaging.rabbitmq.delivery_count": deliveries,
    })
