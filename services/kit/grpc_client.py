"""Unary calls to a gRPC upstream: a deadline on every attempt, and through resilience.py (the same as the HTTP
client's) retries with jittered backoff for idempotent calls, a circuit breaker, per-attempt metrics and this
replica's upstream faults. Loaded only by services that call gRPC (grpc costs about 9 MB a replica).

Several channels, each with its own subchannel pool: each is one TCP connection, and SO_REUSEPORT spreads
connections (not calls) over the upstream's replicas, so one channel would pin a replica to one upstream replica.
A call goes to the channel with the fewest calls in flight: a queued (slow or saturated) upstream replica then gets
fewer new calls, so the load follows capacity even when the connections are split unevenly. The kit's gRPC servers
end connections after a few seconds (grpc_server.MAX_CONNECTION_AGE_MS), so new upstream replicas get connections
too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import grpc

from services.kit.breaker import make_breaker
from services.kit.faults import FaultRegistry, InjectedFault
from services.kit.resilience import Resilience
from services.kit.tracing import grpc_client_interceptors

Stub = TypeVar("Stub")

DEFAULT_CHANNELS = 16
# Codes worth another attempt: the upstream (or the way to it) may do better next time.
RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
# Codes that say "the upstream cannot serve anyone now", for the breaker (resilience.py says why): the same ones. Any
# other code is an answer about this call (INVALID_ARGUMENT, or INTERNAL from one request) and is passed on.
BREAKER_CODES = RETRYABLE_CODES

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),
    # Reconnect soon after the upstream comes back (the default backoff grows to two minutes).
    # (Not grpc.min_reconnect_backoff_ms: that is also the connect timeout, and a short one fails
    # every connection to a slow or paused server with UNAVAILABLE instead of its deadline.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),  # retries are ours (tenacity), counted and bounded once
    # A paused or vanished upstream replica answers nothing: a ping unanswered for 5 s (sent after 10 s
    # without data, only while calls are open) closes that connection, and the channel reconnects.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


def status_code(exc: BaseException) -> grpc.StatusCode | None:
    return exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None


def _retryable(exc: BaseException) -> bool:
    return status_code(exc) in RETRYABLE_CODES


def _deadline_exceeded(exc: BaseException) -> bool:
    return status_code(exc) == grpc.StatusCode.DEADLINE_EXCEEDED


def _not_an_upstream_failure(exc: BaseException) -> bool:
    code = status_code(exc)
    return code is not None and code not in BREAKER_CODES


def _unavailable(exc: InjectedFault) -> BaseException:
    """An injected error or abort looks to the caller like the upstream being unreachable."""
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                details=str(exc))


class GrpcUpstream(Generic[Stub]):
    """`stub(channel)` makes the generated stub; `call` raises grpc.aio.AioRpcError (the last attempt's status) or
    resilience.CircuitOpen. Channels belong to the running loop: they open in the replica's lifetime."""

    def __init__(self, name: str, address: str, stub: Callable[[grpc.aio.Channel], Stub], faults: FaultRegistry, *,
                 deadline_s: float, retries: int, fail_max: int = 5, reset_s: float = 5.0,
                 channels: int = DEFAULT_CHANNELS) -> None:
        self.name = name
        self.address = address
        self.deadline_s = deadline_s
        self.retries = retries
        self.channel_count = channels
        self.breaker = make_breaker(name, fail_max, reset_s, exclude=[_not_an_upstream_failure])
        self._calls = Resilience(name, "grpc", faults, self.breaker, retryable=_retryable,
                                 timed_out=_deadline_exceeded, injected=_unavailable)
        self._make_stub = stub
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[Stub] = []
        self._inflight: list[int] = []

    async def lifetime(self, _: object = None) -> AsyncIterator[None]:
        """Channels open for the replica's life (Service.lifetime)."""
        self.open()
        try:
            yield
        finally:
            await self.close()

    def open(self) -> None:
        for _ in range(self.channel_count):
            channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS,
                                                interceptors=grpc_client_interceptors())
            self._channels.append(channel)
            self._stubs.append(self._make_stub(channel))
            self._inflight.append(0)

    async def close(self) -> None:
        await asyncio.gather(*(c.close(grace=1.0) for c in self._channels), return_exceptions=True)
        self._channels.clear()
        self._stubs.clear()
        self._inflight.clear()

    async def call(self, method: Callable[[Stub], Any], request: Any, *, idempotent: bool = False) -> Any:
        """`method(stub)(request)`, e.g. `call(lambda stub: stub.Charge, request)`; retried only when idempotent."""
        attempts = 1 + (self.retries if idempotent else 0)
        return await self._calls.call(lambda: self._attempt(method, request), attempts=attempts)

    async def _attempt(self, method: Callable[[Stub], Any], request: Any) -> Any:
        index = self._pick()
        self._inflight[index] += 1
        try:
            return await method(self._stubs[index])(request, timeout=self.deadline_s)
        finally:
            self._inflight[index] -= 1

    def _pick(self) -> int:
        """The channel with the fewest calls in flight (least outstanding), ties broken at random; channels in
        reconnect backoff (TRANSIENT_FAILURE, which fail a call at once) only when there is nothing else."""
        failing = grpc.ChannelConnectivity.TRANSIENT_FAILURE
        usable = [i for i, c in enumerate(self._channels) if c.get_state(try_to_connect=False) != failing]
        candidates = usable or list(range(len(self._channels)))
        fewest = min(self._inflight[i] for i in candidates)
        return random.choice([i for i in candidates if self._inflight[i] == fewest])
