"""A real TCP forwarder for tests: it listens on a port of its own and pipes every connection's bytes both ways to
a real server, so that a test can make that server appear (start) or vanish (stop) at a moment of its choosing,
e.g. a PostgreSQL that comes up after the services that need it.

    with Forwarder(("127.0.0.1", 5432), listen_port=port) as fwd:   # the port refuses until start()
        fwd.start()
        ...
        fwd.stop()      # the port refuses again; connections made through it are closed

It runs its own event loop in a thread: the test's code stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType


class Forwarder:
    def __init__(self, target: tuple[str, int], listen_port: int, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host, self.port = host, listen_port
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"forward-{listen_port}", daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def start(self) -> None:
        """Listen from now on (SO_REUSEADDR: the port may have been refused a moment before)."""
        self._call(self._start())

    def stop(self) -> None:
        """Stop listening and cut every connection made through it."""
        self._call(self._stop())

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]
        self._pipes.update(pipes)
        try:
            # One side closing ends the other: a connection is over when either peer is done with it.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._pipes.discard(task)
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
