"""A replica's long-running broker client with a connection of its own: the outbox relay (outbox.py) and the
consumer (consumer.py). Its loop, written once: connect when not connected, do a round of work, and when the broker
or the database fails, close, wait a jittered backoff (0.2 s doubling to 5 s) and start over. Its graceful stop:
no new work, drain what is in hand (bounded), then close."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import aio_pika

from services.kit.bus import connect_broker

if TYPE_CHECKING:
    from services.kit.app import Service
    from services.kit.tls import Identity

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


def cancelled_under_us(exc: BaseException) -> bool:
    """A CancelledError that is not a cancellation of this task: aiormq reports a channel or connection that closed
    under a call that way. It is a failure like any other; only a cancellation of this task is ours to pass on."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and not task.cancelling()


class BrokerWorker:
    """Subclasses say how to connect (`_connect`, after `connect_broker`), whether they still are (`_connected`),
    what one round of work is (`_work`: returns the pause before the next round) and what to drain on a graceful
    stop (`_drain`). `retrying` is the warning logged when a round fails."""

    retrying = "broker worker: failed, retrying"

    def __init__(self, amqp_url: str, log: Any, *, close_timeout_s: float, stop_timeout_s: float,
                 identity: Identity | None = None) -> None:
        self.amqp_url = amqp_url
        self.identity = identity  # with one, the connection is mutual TLS (bus.connect_broker)
        self.log = log
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self._close_timeout_s = close_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- what a subclass says -------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        raise NotImplementedError

    def _connected(self) -> bool:
        raise NotImplementedError

    async def _work(self) -> float:
        raise NotImplementedError

    async def _drain(self) -> None:
        """On a graceful stop, before the loop is awaited: let the work in hand finish."""

    def _forget(self) -> None:
        """Drop the subclass' handles on the connection (the connection and channel are dropped already)."""

    # -- the loop ------------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = FIRST_BACKOFF_S
        try:
            while not self._stopping.is_set():
                try:
                    if not self._connected():
                        await self.close()
                        context = self.identity.client_context if self.identity is not None else None
                        self.connection = await connect_broker(self.amqp_url, ssl_context=context)
                        await self._connect()
                    pause = await self._work()
                    backoff = FIRST_BACKOFF_S
                except (Exception, asyncio.CancelledError) as exc:  # broker or database trouble: retry with backoff
                    if not isinstance(exc, Exception) and not cancelled_under_us(exc):
                        raise
                    self.log.warning(self.retrying, error=repr(exc), backoff_s=backoff)
                    await self.close()
                    pause = backoff * random.uniform(0.5, 1.0)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                if pause:
                    await self._sleep(pause)
        finally:
            if not self._stopping.is_set():  # cancelled; on a graceful stop, stop() closes after the drain
                await self.close()
            self._stopped.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        self._forget()
        if connection is not None:
            # It may be broken already; we only make sure it is gone.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._close_timeout_s)

    async def stop(self) -> None:
        """Graceful: take no new work, let the work in hand finish (bounded), then close the connection."""
        self._stopping.set()
        await self._drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self._stop_timeout_s)
        await self.close()

    async def lifetime(self, svc: Service) -> AsyncGenerator[None, None]:
        """Runs for the replica's life (Service.lifetime): the loop as a background task, stopped gracefully."""
        async with svc.running(self.run, type(self).__name__):
            yield
            await self.stop()
