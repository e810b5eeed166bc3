"""Circuit breakers (aiobreaker) whose state is exported as a metric and logged on every change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from aiobreaker import CircuitBreaker, CircuitBreakerListener, CircuitBreakerState

from services.kit import metrics

_STATE_VALUE = {CircuitBreakerState.CLOSED: 0, CircuitBreakerState.HALF_OPEN: 1, CircuitBreakerState.OPEN: 2}


class _MetricsListener(CircuitBreakerListener):
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.log = structlog.get_logger("breaker")

    def state_change(self, breaker: CircuitBreaker, old: Any, new: Any) -> None:
        metrics.circuit_breaker_state.labels(self.upstream).set(_STATE_VALUE.get(new.state, 0))
        self.log.warning("circuit breaker state changed", upstream=self.upstream,
                         old=old.state.name.lower() if old else None, new=new.state.name.lower())


Exclusion = type[BaseException] | Callable[[BaseException], bool]


def make_breaker(upstream: str, fail_max: int = 5, reset_s: float = 5.0,
                 exclude: list[Exclusion] | None = None) -> CircuitBreaker:
    """A breaker that opens after `fail_max` consecutive failures and lets one trial call through after
    `reset_s`. What `exclude` matches does not count as a failure: an exception type, or a predicate taking the
    exception (e.g. a gRPC error whose code is the caller's own mistake, INVALID_ARGUMENT)."""
    metrics.circuit_breaker_state.labels(upstream).set(0)
    return CircuitBreaker(fail_max=fail_max, timeout_duration=timedelta(seconds=reset_s),
                          exclude=exclude or [], listeners=[_MetricsListener(upstream)], name=upstream)
