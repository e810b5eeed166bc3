"""Calls between modules of one process (the modular monolith, services/monolith): no HTTP and no gRPC hop, and
still through the callee's own boundary, so that a module behaves as it does as a service.

- HTTP: `AppDispatch` hands a request to the callee's aiohttp application as its server would: the router, then the
  application's middlewares (tracing, the access log and RED metrics, problem answers, the callee's injected faults)
  and the handler. Nothing is serialised or parsed on the way: the body is the caller's bytes, the answer is the
  handler's Response. The caller's Upstream (http_client.py) keeps its timeout, retries, breaker and metrics.
- gRPC: `LocalStub` (inprocess_grpc.py, apart because grpc costs about 9 MB and only callers of gRPC load it).

Caller authorization (mutual TLS) has no place here: there is no connection to present a certificate on, and the
monolith wires only the calls the shop's call graph allows (services.contract), so the graph holds by construction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from services.kit.metrics import MODULE

# What an in-process request shows as its peer: this process.
LOCAL_PEER = ("127.0.0.1", 0)

Dispatch = Callable[[str, str, bytes | None, Mapping[str, str] | None, Mapping[str, str] | None],
                    Awaitable[tuple[int, Mapping[str, str], bytes]]]


class _Transport:
    """The transport an in-process request reports: a local peer, never closing, no TLS."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": LOCAL_PEER, "sockname": LOCAL_PEER}.get(name, default)

    def is_closing(self) -> bool:
        return False


class _Protocol:
    """What aiohttp's Request reads of its connection's protocol (and what a body's StreamReader may call)."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.peername = LOCAL_PEER
        self.sockname = LOCAL_PEER
        self.ssl_context = None
        self.writer = None

    def pause_reading(self, **_: object) -> None:  # the whole body is there already: nothing to pause
        pass

    def resume_reading(self, **_: object) -> None:
        pass


class InProcessError(RuntimeError):
    """The callee answered with something an in-process call cannot carry (a streamed response)."""


class AppDispatch:
    """Requests to one module's aiohttp application, in this process. The application must be set up (an
    AppRunner without a site: its startup ran and it is frozen) before the first call."""

    def __init__(self, name: str, app: web.Application) -> None:
        self.name = name
        self.app = app
        # set while the module serves (its lifetimes entered, its application set up)
        self._serving = asyncio.Event()

    @property
    def serving(self) -> bool:
        return self._serving.is_set()

    @serving.setter
    def serving(self, value: bool) -> None:
        (self._serving.set if value else self._serving.clear)()

    async def wait_serving(self) -> None:
        await self._serving.wait()

    async def __call__(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None,
                       params: Mapping[str, str] | None) -> tuple[int, Mapping[str, str], bytes]:
        if not self.serving:  # as a closed port refuses: the caller's retries and breaker count it so
            raise aiohttp.ClientConnectionError(f"{self.name} is not serving")
        url = URL(path)
        if params:
            url = url.update_query(dict(params))
        head = CIMultiDict(headers or {})
        if body:
            head["Content-Length"] = str(len(body))
        protocol = _Protocol()
        loop = asyncio.get_running_loop()
        payload = StreamReader(protocol, max(len(body or b""), 2**16), loop=loop)  # type: ignore[arg-type]
        if body:
            payload.feed_data(body)
        payload.feed_eof()
        message = RawRequestMessage(method.upper(), str(url), HttpVersion11, CIMultiDictProxy(head),
                                    tuple((k.encode(), v.encode()) for k, v in head.items()), False, None, False,
                                    False, url)
        request = web.Request(message, payload, protocol, None, asyncio.current_task(), loop,  # type: ignore[arg-type]
                              client_max_size=self.app._client_max_size)
        module = MODULE.set(self.name)  # the callee's metrics are the callee's (services/kit/metrics.py)
        try:
            # Application._handle is what aiohttp's own server calls per request (routing, middlewares, handler);
            # aiohttp is pinned (requirements.lock) and tests/monolith exercises this path.
            response = await self.app._handle(request)
        except web.HTTPException as exc:  # raised past every middleware: still an answer
            response = exc
        finally:
            MODULE.reset(module)
        if not isinstance(response, web.Response):
            raise InProcessError(f"{self.name} answered {method} {url.path} with a streamed response")
        body_out = response.body
        if body_out is not None and not isinstance(body_out, bytes | bytearray):
            raise InProcessError(f"{self.name} answered {method} {url.path} with a payload object")
        data = bytes(body_out or b"")
        out = dict(response.headers)
        if response.content_type and "Content-Type" not in out:
            out["Content-Type"] = response.content_type
        return response.status, out, data
