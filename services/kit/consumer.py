"""A queue consumer's lifecycle: its own connection, prefetch, the topology (bus.declare_topology), manual acks,
reconnects with backoff when the broker goes away (worker.py), and a graceful stop that drains the messages in hand.

The message handling is the service's: `handler(message, deliveries)` decides whether to ack, nack or reject, and
must settle the message itself. Unacked messages go back to the queue when the connection is lost and are
redelivered, so a handler must be idempotent (notifications keeps a row per processed event id).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from services.contract import ORDER_EVENTS_QUEUE
from services.kit import metrics
from services.kit.bus import declare_topology, delivery_count
from services.kit.tls import Identity
from services.kit.worker import BrokerWorker, cancelled_under_us

MessageHandler = Callable[[aio_pika.abc.AbstractIncomingMessage, int], Awaitable[None]]

CHECK_EVERY_S = 0.5  # how often the consumer looks whether it still consumes
CANCEL_TIMEOUT_S = 3.0
DRAIN_TIMEOUT_S = 10.0


class Consumer(BrokerWorker):
    """Consumes the order events queue with `prefetch` unacked messages at most; `handler` gets each message and
    which delivery of it this is (1 for the first). Deliveries after the first are counted as `redelivered`."""

    retrying = "consumer: broker unavailable, retrying"

    def __init__(self, amqp_url: str, handler: MessageHandler, *, delivery_limit: int, prefetch: int,
                 log: Any, identity: Identity | None = None) -> None:
        # Close: the connection may be broken already. Stop: the loop ends at once; the drain is _drain's.
        super().__init__(amqp_url, log, close_timeout_s=3.0, stop_timeout_s=2.0, identity=identity)
        self.queue_name = ORDER_EVENTS_QUEUE
        self.handler = handler
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self.queue: aio_pika.abc.AbstractQueue | None = None
        self.consumer_tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._inflight_at_stop = 0

    @property
    def consuming(self) -> bool:
        return (
            self.consumer_tag is not None
            and self.connection is not None
            and not self.connection.is_closed
            and self.channel is not None
            and not self.channel.is_closed
        )

    # -- the worker ------------------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        assert self.connection is not None
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.prefetch)
        topology = await declare_topology(self.channel, delivery_limit=self.delivery_limit)
        self.queue = topology.queue
        self.consumer_tag = await self.queue.consume(self._on_message, no_ack=False)
        self.log.info("consuming", queue=self.queue_name, prefetch=self.prefetch, delivery_limit=self.delivery_limit)

    def _connected(self) -> bool:
        return self.consuming

    def _forget(self) -> None:
        self.queue, self.consumer_tag = None, None

    async def _work(self) -> float:
        return CHECK_EVERY_S  # the messages come by themselves; this only watches the connection

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            deliveries = delivery_count(message)
            if message.redelivered or deliveries > 1:
                metrics.consumer_messages_total.labels(self.queue_name, "redelivered").inc()
            await self.handler(message, deliveries)
        except Exception:  # noqa: BLE001 - e.g. the channel closed under us; the broker will redeliver
            self.log.exception("message handling failed", message_id=message.message_id)
        finally:
            if task is not None:
                self._inflight.discard(task)

    # -- the graceful stop -----------------------------------------------------------------------------------------
    async def _drain(self) -> None:
        """Stop taking messages (basic.cancel), then let the in-flight ones finish (and ack)."""
        if self.queue is not None and self.consumer_tag is not None:
            try:
                await asyncio.wait_for(self.queue.cancel(self.consumer_tag), CANCEL_TIMEOUT_S)
            except (Exception, asyncio.CancelledError) as exc:
                if not isinstance(exc, Exception) and not cancelled_under_us(exc):
                    raise
                # Closing the connection in stop() stops deliveries anyway.
                self.log.warning("consumer cancel failed", error=repr(exc))
        self._inflight_at_stop = len(self._inflight)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=DRAIN_TIMEOUT_S)

    async def stop(self) -> None:
        started = time.perf_counter()
        await super().stop()
        self.log.info(
            "consumer stopped",
            inflight_at_stop=self._inflight_at_stop,
            unfinished=len(self._inflight),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
