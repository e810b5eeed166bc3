"""The statistics of `chaoslab compare`: the median, and a percentile bootstrap confidence interval of the
difference of two medians (candidate minus base).

Why the median and the bootstrap: chaos figures are few (N = 3 to 10 repetitions), skewed and sometimes
censored (an alert that never came is recorded as the time waited), so a mean and a t-interval would be led by
one slow run and assume a shape the data do not have. The bootstrap assumes nothing about the shape: it resamples
each set with replacement, takes the difference of the resampled medians many times, and reads the interval from
the percentiles of those differences (Efron and Tibshirani, An Introduction to the Bootstrap, ch. 13).

What N buys: with 3 runs a side the interval of the difference of medians runs from min(candidate) - max(base)
to max(candidate) - min(base) at 95%: it excludes zero only when every candidate run is worse than every base run
(or better). That is the honest answer with so few runs; more repetitions narrow it.

Pure Python with random.Random(seed): the same inputs give the same interval on every machine, and chaoslab
takes no numerical dependency for a few thousand resamples of a handful of numbers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("the median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly between ranks (Hyndman and Fan's type 7, numpy's
    default)."""
    if not ordered:
        raise ValueError("the quantile of no values")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Interval:
    estimate: float  # median(candidate) - median(base)
    low: float
    high: float
    confidence: float
    resamples: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def bootstrap_median_difference(base: Sequence[float], candidate: Sequence[float], *,
                                confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                                seed: int = 0) -> Interval:
    """The percentile bootstrap interval of median(candidate) - median(base)."""
    if not base or not candidate:
        raise ValueError("both sets need at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 100:
        raise ValueError(f"at least 100 resamples, not {resamples}")
    rng = random.Random(seed)
    b, c = list(base), list(candidate)
    differences = sorted(median(rng.choices(c, k=len(c))) - median(rng.choices(b, k=len(b)))
                         for _ in range(resamples))
    tail = (1 - confidence) / 2
    return Interval(median(c) - median(b), quantile(differences, tail), quantile(differences, 1 - tail),
                    confidence, resamples)
