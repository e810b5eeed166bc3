"""What every call to an upstream goes through, whatever its protocol (http_client.py, grpc_client.py).

- Attempts: 1, or 1 + retries for a call that is safe to repeat, with tenacity's jittered exponential backoff
  between them, on the failures the protocol calls retryable.
- A circuit breaker per upstream (aiobreaker, breaker.py) around every attempt: consecutive failures open it, and
  while it is open a call is refused without being made.
- This replica's upstream faults (faults.py) applied inside each attempt, mapped by the protocol onto the failure
  the upstream itself would cause; they count for the retry and the breaker like real ones.
- client_request_duration_seconds{upstream, protocol, outcome} per attempt: ok, error (an answer that is a
  failure, such as an HTTP 5xx, or a failure without an answer) or timeout; and one circuit_open observation for a
  call the open breaker refused.

What a breaker counts. A breaker is shared by every client of this replica, so it counts only failures of the
upstream itself, which no client can cause for the others: no answer (a connection refused or reset, a timeout or
deadline) and, over gRPC, UNAVAILABLE and RESOURCE_EXHAUSTED (a server that cannot serve anyone now). An answer is
never a breaker failure, whatever it says: it came from a live upstream, and it may be about one request (a 400, a
500 that one body provoked) or about the upstream's own dependency (orders' 503 while users is down). Counting
answers let six anonymous bodies open the gateway's breaker to auth for every user, and users' outage open the
gateway's breaker to orders for order reads that never touch users (issue 22, findings 1 and 5). Retries follow the
same line, for calls that are safe to repeat only: no answer is worth another attempt; an answer is passed on.

The failure that trips the breaker reports itself (a timeout stays a timeout): the call was made and that is what
happened to it. Only a call refused by an open breaker reports CircuitOpen.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiobreaker import CircuitBreaker, CircuitBreakerError
from opentelemetry import trace
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.kit import metrics
from services.kit.faults import FaultRegistry, InjectedFault, apply_fault
from services.kit.tracing import current_exemplar

T = TypeVar("T")
Predicate = Callable[[BaseException], bool]

# 50 ms, 100 ms, 200 ms ... at most 1 s, plus up to 100 ms of jitter so that callers do not retry in step.
RETRY_WAIT = wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.1)


class CircuitOpen(Exception):
    """The upstream's breaker is open: the call was refused without being made."""

    def __init__(self, upstream: str) -> None:
        super().__init__(f"{upstream} is unavailable (circuit open)")
        self.upstream = upstream


def observe_breaker_rejection(upstream: str, protocol: str) -> None:
    """Count a call the open breaker refused, so dashboards show it as an outcome of its own, and mark it on the
    request's span: a refused call makes no client span, and a trace must show that the breaker engaged."""
    metrics.client_request_duration_seconds.labels(upstream, protocol, "circuit_open").observe(0.0)
    trace.get_current_span().add_event("circuit_open", {"upstream": upstream, "protocol": protocol})


class Resilience:
    """Calls to one upstream over one protocol. The protocol says which failures are retryable, which are
    timeouts, which answers are failures for the metrics (`failed_answer`), and what an injected fault looks like
    on it: `injected` returns the exception to raise, or the answer the upstream would have given."""

    def __init__(self, upstream: str, protocol: str, faults: FaultRegistry, breaker: CircuitBreaker, *,
                 retryable: Predicate, timed_out: Predicate,
                 injected: Callable[[InjectedFault], BaseException | Any],
                 failed_answer: Callable[[Any], bool] = lambda _: False) -> None:
        self.upstream = upstream
        self.protocol = protocol
        self.breaker = breaker
        self._faults = faults
        self._retryable = retryable
        self._timed_out = timed_out
        self._injected = injected
        self._failed_answer = failed_answer

    async def call(self, attempt: Callable[[], Awaitable[T]], *, attempts: int) -> T:
        """`attempt()` up to `attempts` times; raises the last attempt's failure, or CircuitOpen."""
        try:
            async for retrying in AsyncRetrying(stop=stop_after_attempt(attempts), wait=RETRY_WAIT,
                                                retry=retry_if_exception(self._retryable), reraise=True):
                with retrying:
                    number = retrying.retry_state.attempt_number
                    if number > 1:  # a trace shows each retry, so a retry storm is visible per request
                        trace.get_current_span().add_event("retry", {"upstream": self.upstream, "attempt": number})
                    return await self.breaker.call_async(self._measured, attempt)
        except CircuitBreakerError as exc:
            if exc.__cause__ is None:  # refused before any call: the breaker is open
                observe_breaker_rejection(self.upstream, self.protocol)
                raise CircuitOpen(self.upstream) from None
            # This call failed and its failure opened the breaker: it reports what happened to it.
            raise exc.__cause__ from None
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises

    async def _measured(self, attempt: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                await apply_fault(self._faults, upstream=self.upstream)
            except InjectedFault as exc:
                injected = self._injected(exc)
                if isinstance(injected, BaseException):
                    raise injected from None
                result = injected
            else:
                result = await attempt()
            outcome = "error" if self._failed_answer(result) else "ok"
            return result
        except Exception as exc:
            if self._timed_out(exc):
                outcome = "timeout"
            raise
        finally:
            metrics.client_request_duration_seconds.labels(self.upstream, self.protocol, outcome).observe(
                time.perf_counter() - started, exemplar=current_exemplar())
