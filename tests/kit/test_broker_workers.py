"""The kit's outbox relay and consumer (services/kit/outbox.py, consumer.py) as a library, over a RabbitMQ node of
this test's own: a row written to an outbox table reaches the handler; while the broker is down the row waits;
after the broker restarts both reconnect by themselves and the waiting row arrives, once. (tests/services runs the
same machinery inside orders and notifications, broker outage and graceful stop included.)"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import structlog
from opentelemetry import trace
from sqlalchemy import JSON, BigInteger, Column, Float, MetaData, String, Table, Text, select

from services.contract import EXCHANGE, ORDER_CREATED
from services.kit.consumer import Consumer
from services.kit.db import Database
from services.kit.outbox import OutboxRelay, outbox_entry
from support.rabbit import RabbitNode, free_port_pair

pytestmark = pytest.mark.services

metadata = MetaData()
outbox = Table(
    "outbox", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("routing_key", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("claimed_until", Float, nullable=False),
    Column("claim_token", String(36), nullable=True),
    Column("attempts", BigInteger, nullable=False),
    Column("sent_at", Float, nullable=True),
)


async def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    """Wait until `predicate()` (plain or awaitable) holds; the failure says what was awaited."""

    async def poll() -> None:
        while True:
            value = predicate()
            if await value if inspect.isawaitable(value) else value:
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


def _restart_begins(node: RabbitNode) -> None:
    """The broker goes away: SIGTERM, a clean stop. (A SIGKILL seconds after the quorum queue was declared loses its
    registration with RabbitMQ's Raft layer, and it has no leader after the restart: a broker artefact that the
    services' tests, whose node lives for minutes before its outage, do not meet.)"""
    assert node.proc is not None
    os.killpg(node.proc.pid, signal.SIGTERM)
    node.proc.wait(60)
    node.stop()  # forgets the process and waits for the port to close


async def test_relay_and_consumer_reconnect_after_the_broker_restarts(tmp_path: Path) -> None:
    node = RabbitNode(tmp_path / "rabbit", port=free_port_pair(23480, 23498))
    node.start()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await db.create_all(metadata)
    log = structlog.get_logger("test")
    received: list[str] = []

    async def handler(message: aio_pika.abc.AbstractIncomingMessage, deliveries: int) -> None:
        received.append(json.loads(message.body)["event_id"])
        await message.ack()

    relay = OutboxRelay(db, outbox, node.amqp_url, exchange=EXCHANGE, app_id="test", tracer=trace.get_tracer("test"),
                        log=log, poll_s=0.05)
    consumer = Consumer(node.amqp_url, handler, delivery_limit=3, prefetch=10, log=log)

    async def write_event() -> str:
        event_id = str(uuid.uuid4())
        payload = json.dumps({"event_id": event_id}).encode()
        async with db.session(write=True) as session:
            await session.execute(outbox.insert().values(
                **outbox_entry(event_id=event_id, routing_key=ORDER_CREATED, payload=payload)))
        return event_id

    async def sent(event_id: str) -> bool:
        async with db.session() as session:
            row = (await session.execute(select(outbox.c.sent_at).where(outbox.c.event_id == event_id))).one()
        return row.sent_at is not None

    def connected() -> bool:
        return consumer.consuming and relay.broker_connected

    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(relay.run())]
    try:
        await _until(connected, "both connected")
        first = await write_event()
        await _until(lambda: sent(first), "the first event confirmed")
        await _until(lambda: received == [first], "the first event handled")

        _restart_begins(node)
        await _until(lambda: not consumer.consuming, "the consumer sees the outage")
        second = await write_event()
        await asyncio.sleep(0.5)  # several relay rounds: each fails and backs off
        assert not await sent(second) and await relay.backlog() == 1

        node.start()
        await _until(connected, "both reconnected", timeout_s=60)
        await _until(lambda: sent(second), "the waiting event confirmed")
        await _until(lambda: len(received) == 2, "the waiting event handled")
        assert received == [first, second]
        assert await relay.backlog() == 0
    finally:
        await asyncio.gather(relay.stop(), consumer.stop())
        await asyncio.gather(*tasks)
        await db.close()
        node.close()
    assert all(task.done() and task.exception() is None for task in tasks)  # stopped by stop(), not cancelled
