"""Which new traces a replica records: a ratio of them (OTEL_TRACES_SAMPLER_ARG), and at most so many a second
(TRACES_PER_SECOND), the way Jaeger's rate-limiting and X-Ray's reservoir samplers bound tracing's cost.

At the lab's own rates (chaos experiments at 5 requests/s, gamedays at 8) every request is traced; under a
saturating load test the cap bounds the spans written and the CPU that recording them costs, and the traces it
drops cost little past their first hop (unrecorded.py; bench/overhead.py). The SDK has no such sampler, so this is
one through its extension point; ParentBased around it makes every other hop follow the decision of the trace's
first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from services.kit.token_bucket import TokenBucket


class RateLimitedRatioSampler(Sampler):
    """Samples `ratio` of new traces, then lets at most `per_second` of those through a token bucket that holds a
    second's worth (at least one), so a burst after a quiet spell is traced whole. `per_second` 0: no limit."""

    def __init__(self, ratio: float, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second < 0:
            raise ValueError(f"per_second must be >= 0, got {per_second}")
        self._ratio = TraceIdRatioBased(ratio)
        self._per_second = per_second
        self._capacity = max(1.0, per_second)
        self._clock = clock
        self._bucket = TokenBucket(self._capacity, clock())
        self._lock = threading.Lock()  # the services start spans on one event loop, but any thread may

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if not result.decision.is_sampled() or self._per_second == 0 or self._take():
            return result
        return SamplingResult(Decision.DROP, None, result.trace_state)

    def _take(self) -> bool:
        with self._lock:
            return self._bucket.take(self._clock(), self._per_second, self._capacity) == 0.0

    def get_description(self) -> str:
        return f"RateLimitedRatio{{{self._ratio.rate},{self._per_second:g}/s}}"


def lab_sampler(ratio: float, per_second: float) -> Sampler:
    """The services' sampler: a trace's first hop decides (ratio, then the cap); every later hop follows it."""
    return ParentBased(RateLimitedRatioSampler(ratio, per_second))
