"""Calls to upstream services over HTTP: a timeout on every attempt, and through resilience.py (the same as the
gRPC client's) retries with jittered backoff for idempotent calls, a circuit breaker per upstream, per-attempt
metrics and this replica's upstream faults; errors a caller can pass on (503/504).

Every answer, 5xx included, is the upstream's answer: returned to the caller, never retried, never counted by the
breaker (resilience.py says why). Only no answer (refused, reset, timed out) is retried and counted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobreaker import CircuitBreaker

from services.kit.breaker import make_breaker
from services.kit.errors import ApiError
from services.kit.faults import FaultRegistry, InjectedAbort, InjectedError, InjectedFault
from services.kit.inprocess import Dispatch
from services.kit.resilience import CircuitOpen, Resilience


class UpstreamError(ApiError):
    """The upstream could not answer: 503 (unavailable, breaker open) or 504 (timed out).

    `reason` says which, for callers that count failures by cause: circuit_open, unavailable or timeout; the
    problem body carries it too."""

    def __init__(self, status: int, title: str, detail: str = "", *, reason: str, **extra: Any) -> None:
        super().__init__(status, title, detail, reason=reason, **extra)
        self.reason = reason


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# No answer came: the only failures worth another attempt (for a call that is safe to repeat) and the breaker's.
_RETRYABLE = (aiohttp.ClientConnectionError, asyncio.TimeoutError, InjectedAbort)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RETRYABLE)


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError)


def _injected(exc: InjectedFault) -> BaseException | UpstreamResponse:
    """An injected abort is an unreachable upstream (retried); an injected error is the upstream answering with the
    fault's status (a problem document), passed on like any answer."""
    if isinstance(exc, InjectedError):
        problem = ApiError(exc.status, "Injected Fault", str(exc)).response()
        return UpstreamResponse(exc.status, {"Content-Type": problem.content_type}, problem.body)
    return exc


def _failed_answer(response: UpstreamResponse) -> bool:
    return response.status >= 500


class Upstream:
    def __init__(
        self,
        name: str,
        base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        faults: FaultRegistry,
        *,
        timeout_s: float = 3.0,
        retries: int = 2,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.timeout_s = timeout_s
        self.retries = retries
        self.breaker = breaker or make_breaker(name)
        self._faults = faults
        self._dispatch: Dispatch | None = None
        self._calls = Resilience(name, "http", faults, self.breaker, retryable=_retryable, timed_out=_timed_out,
                                 injected=_injected, failed_answer=_failed_answer)

    def serve_in_process(self, dispatch: Dispatch) -> None:
        """Send every call to `dispatch` (a module of this process, services/kit/inprocess.py) instead of over
        HTTP: the same timeout, retries, breaker and faults; the metrics' protocol label says `inprocess`."""
        self._dispatch = dispatch
        self._calls = Resilience(self.name, "inprocess", self._faults, self.breaker, retryable=_retryable,
                                 timed_out=_timed_out, injected=_injected, failed_answer=_failed_answer)

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = False,
        timeout_s: float | None = None,
    ) -> UpstreamResponse:
        """Send a request; returns the answer (any status), raises UpstreamError when there is none."""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        attempts = 1 + (self.retries if idempotent else 0)
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            return await self._calls.call(lambda: self._attempt(method, path, body, headers, params, timeout),
                                          attempts=attempts)
        except CircuitOpen as exc:
            raise UpstreamError(503, "Service Unavailable", str(exc), headers={"Retry-After": "1"},
                                upstream=self.name, reason="circuit_open") from None
        except TimeoutError:
            raise UpstreamError(504, "Gateway Timeout", f"{self.name} did not answer in time",
                                upstream=self.name, reason="timeout") from None
        except (aiohttp.ClientError, InjectedAbort):
            # Not the exception's text: it names the upstream's address, which is none of the client's business.
            raise UpstreamError(503, "Service Unavailable", f"{self.name} is unreachable",
                                headers={"Retry-After": "1"}, upstream=self.name, reason="unavailable") from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> tuple[int, Any]:
        """Send a JSON request; returns (status, decoded JSON body or None)."""
        response = await self.send(method, path, json_body=json, headers=headers, idempotent=idempotent)
        return response.status, response.json()

    async def _attempt(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> UpstreamResponse:
        if self._dispatch is not None:
            async with asyncio.timeout(client_timeout.total):
                status, answer_headers, answer = await self._dispatch(method, path, body, headers, params)
            return UpstreamResponse(status, answer_headers, answer)
        # server_hostname: over mutual TLS the upstream's certificate must be the one the CA made for its name
        # (services.kit.tls); plain HTTP ignores it.
        async with self._session().request(
            method, self.base_url + path, data=body, headers=headers, params=params, timeout=client_timeout,
            server_hostname=self.name,
        ) as resp:
            return UpstreamResponse(resp.status, dict(resp.headers), await resp.read())
