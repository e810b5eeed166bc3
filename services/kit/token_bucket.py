"""One token bucket: refilled at its owner's rate, at most its owner's burst stored, one token taken per use. The
gateway keeps one per client (rate limiting, services/gateway/rate_limit.py), the trace sampler one per replica
(TRACES_PER_SECOND, sampling.py)."""

from __future__ import annotations


class TokenBucket:
    """Two floats: the rate and the burst stay with the owner, since the gateway holds thousands of buckets."""

    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated

    def take(self, now: float, rate: float, burst: float) -> float:
        """Refill for the time since the last use, then take a token: 0.0 when there was one, else the seconds
        until there is (rate > 0)."""
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate
