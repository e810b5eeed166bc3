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

from services.kit import metrics
from services.kit.breaker import make_breaker
from services.kit.faults import FaultRegistry, InjectedFault
from services.kit.resilience import Resilience
from services.kit.tls import Identity
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


def handshake_failure(exc: BaseException) -> str | None:
    """The reason when a call failed because the TLS handshake with the upstream did (gRPC reports it only as
    UNAVAILABLE, with its core's message), else None. A server that refused our certificate shows no reason here
    under TLS 1.3 (the connection just closes): the server counts that, where it can (handshakes.py)."""
    if status_code(exc) != grpc.StatusCode.UNAVAILABLE:
        return None
    details = (exc.details() or "").lower()  # type: ignore[attr-defined]
    if "handshake" not in details and "verification" not in details and "certificate" not in details:
        return None
    if "expired" in details:
        return "expired"
    if "hostname" in details or "server name" in details:
        return "wrong_name"
    if "unknown_ca" in details or "issuer" in details:
        return "unknown_ca"
    if "certificate" in details:
        return "bad_certificate"
    return "other"


class _Channel(Generic[Stub]):
    """One channel, its stub and how many calls it has in flight."""

    def __init__(self, channel: grpc.aio.Channel, stub: Stub) -> None:
        self.channel = channel
        self.stub = stub
        self.inflight = 0


class GrpcUpstream(Generic[Stub]):
    """`stub(channel)` makes the generated stub; `call` raises grpc.aio.AioRpcError (the last attempt's status) or
    resilience.CircuitOpen. Channels belong to the running loop: they open in the replica's lifetime.

    With an `identity` (services.kit.tls) the channels speak mutual TLS: they present this replica's certificate
    and accept only an upstream whose certificate the CA signed for `name` (its DNS SAN, checked in place of the
    address). A channel's credentials are fixed when it is made, so after a renewal new channels replace the old
    ones, which finish the calls they have in flight (for a deadline and a second) before they close."""

    def __init__(self, name: str, address: str, stub: Callable[[grpc.aio.Channel], Stub], faults: FaultRegistry, *,
                 deadline_s: float, retries: int, fail_max: int = 5, reset_s: float = 5.0,
                 channels: int = DEFAULT_CHANNELS, identity: Identity | None = None) -> None:
        self.name = name
        self.address = address
        self.deadline_s = deadline_s
        self.retries = retries
        self.channel_count = channels
        self.identity = identity
        self.breaker = make_breaker(name, fail_max, reset_s, exclude=[_not_an_upstream_failure])
        self._calls = Resilience(name, "grpc", faults, self.breaker, retryable=_retryable,
                                 timed_out=_deadline_exceeded, injected=_unavailable)
        self._make_stub = stub
        self._faults = faults
        self._local: Stub | None = None
        self._channels: list[_Channel[Stub]] = []
        self._retiring: set[asyncio.Task[None]] = set()
        if identity is not None:
            identity.on_reload(self._renew)

    async def lifetime(self, _: object = None) -> AsyncIterator[None]:
        """Channels open for the replica's life (Service.lifetime)."""
        self.open()
        try:
            yield
        finally:
            await self.close()

    def serve_in_process(self, stub: Stub) -> None:
        """Call `stub` (services/kit/inprocess.LocalStub: a module of this process) instead of opening channels:
        the same deadline, retries, breaker and faults; the metrics' protocol label says `inprocess`."""
        self._local = stub
        self._calls = Resilience(self.name, "inprocess", self._faults, self.breaker, retryable=_retryable,
                                 timed_out=_deadline_exceeded, injected=_unavailable)

    def _new_channel(self) -> _Channel[Stub]:
        if self.identity is None:
            channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS,
                                                interceptors=grpc_client_interceptors())
        else:
            channel = grpc.aio.secure_channel(self.address, self.identity.grpc_channel_credentials(),
                                              options=[*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", self.name)],
                                              interceptors=grpc_client_interceptors())
        return _Channel(channel, self._make_stub(channel))

    def open(self) -> None:
        if self._local is not None:
            return  # in process: no channel to open
        self._channels = [self._new_channel() for _ in range(self.channel_count)]

    def _renew(self) -> None:
        """A new certificate: new channels for new calls; the old ones close once their calls are done."""
        if not self._channels:
            return  # not open (yet, or any more): open() takes the new pair
        old, self._channels = self._channels, [self._new_channel() for _ in range(self.channel_count)]
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, channels: list[_Channel[Stub]]) -> None:
        await asyncio.sleep(self.deadline_s + 1.0)  # every call on them has ended by its deadline
        await asyncio.gather(*(c.channel.close(grace=1.0) for c in channels), return_exceptions=True)

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(c.channel.close(grace=1.0) for c in channels), return_exceptions=True)

    async def call(self, method: Callable[[Stub], Any], request: Any, *, idempotent: bool = False) -> Any:
        """`method(stub)(request)`, e.g. `call(lambda stub: stub.Charge, request)`; retried only when idempotent."""
        attempts = 1 + (self.retries if idempotent else 0)
        return await self._calls.call(lambda: self._attempt(method, request), attempts=attempts)

    async def _attempt(self, method: Callable[[Stub], Any], request: Any) -> Any:
        if self._local is not None:
            return await method(self._local)(request, timeout=self.deadline_s)
        chosen = self._pick()
        chosen.inflight += 1
        try:
            return await method(chosen.stub)(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            reason = handshake_failure(exc) if self.identity is not None else None
            if reason is not None:
                metrics.tls_handshake_failures_total.labels("client", self.name, reason).inc()
            raise
        finally:
            chosen.inflight -= 1

    def _pick(self) -> _Channel[Stub]:
        """The channel with the fewest calls in flight (least outstanding), ties broken at random; channels in
        reconnect backoff (TRANSIENT_FAILURE, which fail a call at once) only when there is nothing else."""
        failing = grpc.ChannelConnectivity.TRANSIENT_FAILURE
        usable = [c for c in self._channels if c.channel.get_state(try_to_connect=False) != failing]
        candidates = usable or self._channels
        fewest = min(c.inflight for c in candidates)
        return random.choice([c for c in candidates if c.inflight == fewest])
