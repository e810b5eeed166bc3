"""The gateway's per-client rate limit: a token bucket per client (services/kit/token_bucket.py), bounded in number."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from services.kit.token_bucket import TokenBucket


class TokenBucketLimiter:
    """Per-client token buckets: `rate` tokens a second, at most `burst` stored; one request takes one token.

    Why our own: the `limits` library (the maintained choice in Python) offers fixed and moving windows, not a token
    bucket, and its moving window keeps a timestamp per request (burst-sized memory per client); a token bucket is
    two floats per client, allows a burst after idleness, and gives an exact retry-after: (1 - tokens) / rate.

    The map stays bounded: buckets are kept in least-recently-used order, and a bucket idle for burst / rate seconds
    is full again, i.e. no different from a new one, so it is dropped; above `max_clients` the least recently seen
    client is dropped even if not yet full (it gets a fresh bucket: slightly lenient, never wrong the other way).
    """

    def __init__(
        self, rate: float, burst: int, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max(1, max_clients)
        self.idle_s = self.burst / self.rate
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str) -> float:
        """Take a token for `client`: 0.0 when allowed, else the seconds until a token is available."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.burst, now)
        else:
            self._buckets.move_to_end(client)
        wait_s = bucket.take(now, self.rate, self.burst)
        self._evict(now)
        return wait_s

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while len(buckets) > 1:
            oldest = next(iter(buckets.values()))
            if len(buckets) > self.max_clients or now - oldest.updated >= self.idle_s:
                buckets.popitem(last=False)
            else:
                break


def retry_after_header(wait_s: float) -> str:
    """Retry-After in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
