"""Comparing two sets figure by figure, and what counts as a regression.

For every figure (chaoslab.history.figures) of every suite both sets have: the medians, the difference
median(candidate) - median(base) and its bootstrap interval (stats.py). Read in the direction in which the figure
gets worse (up for times, ratios and the budget; down for the score):

- regression: the whole interval lies beyond the tolerance: the candidate is worse, significantly, and by more
  than the tolerance, even at the interval's most favourable end. The only verdict that fails a comparison;
- worse, within tolerance: the interval excludes zero but reaches inside the tolerance;
- improvement: the whole interval lies beyond the tolerance on the better side; better, within tolerance likewise;
- no significant change: the interval holds zero;
- too few runs: fewer than `min_runs` values on a side: not judged (with 2 runs a bootstrap interval means little).

The tolerance of a figure is max(absolute, relative x |median of the base|) (defaults in figures.py; --tolerance
FIGURE=VALUE sets an absolute one, FIGURE=N% a relative one).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any

from chaoslab.compare.sets import RunSet
from chaoslab.compare.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval, bootstrap_median_difference, median
from chaoslab.errors import UsageError
from chaoslab.history.figures import FIGURES, RUN

REGRESSION = "regression"
WORSE_WITHIN = "worse, within tolerance"
IMPROVEMENT = "improvement"
BETTER_WITHIN = "better, within tolerance"
NO_CHANGE = "no significant change"
TOO_FEW = "too few runs"
MIN_RUNS = 3


@dataclass(frozen=True)
class Tolerance:
    absolute: float
    relative: float

    def of(self, base_median: float) -> float:
        return max(self.absolute, self.relative * abs(base_median))

    def describe(self) -> str:
        parts = [f"{self.absolute:g}"] if self.absolute else []
        if self.relative:
            parts.append(f"{self.relative:.0%} of the base")
        return "max(" + ", ".join(parts) + ")" if len(parts) > 1 else (parts[0] if parts else "0")


def default_tolerances() -> dict[str, Tolerance]:
    return {name: Tolerance(f.abs_tolerance, f.rel_tolerance) for name, f in FIGURES.items()}


def parse_tolerances(items: list[str]) -> dict[str, Tolerance]:
    """--tolerance FIGURE=VALUE (absolute, in the figure's unit: seconds, a ratio, points) or FIGURE=N% (relative
    to the base's median), over the defaults. UsageError naming what is wrong."""
    tolerances = default_tolerances()
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad --tolerance {item!r}: expected FIGURE=VALUE or FIGURE=N%")
        if name not in FIGURES:
            close = difflib.get_close_matches(name, FIGURES, n=1)
            raise UsageError(f"bad --tolerance {item!r}: no figure {name!r}" +
                             (f" (did you mean {close[0]!r}?)" if close else "") + f"; figures: {', '.join(FIGURES)}")
        try:
            if value.endswith("%"):
                tolerances[name] = Tolerance(0.0, float(value[:-1]) / 100)
            else:
                tolerances[name] = Tolerance(float(value), 0.0)
        except ValueError:
            raise UsageError(f"bad --tolerance {item!r}: {value!r} is not a number (or N%)") from None
        if tolerances[name].absolute < 0 or tolerances[name].relative < 0:
            raise UsageError(f"bad --tolerance {item!r}: a tolerance is not negative")
    return tolerances


@dataclass
class FigureComparison:
    suite: str
    figure: str
    base: list[float]
    candidate: list[float]
    tolerance: float
    verdict: str
    base_median: float | None = None
    candidate_median: float | None = None
    interval: Interval | None = None
    censored: int = 0  # values that are lower bounds (never happened within the wait)

    @property
    def label(self) -> str:
        return FIGURES[self.figure].label

    @property
    def id(self) -> str:
        return f"{self.label}" if self.suite == RUN else f"{self.suite}: {self.label}"

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "figure": self.figure, "label": self.label, "unit": FIGURES[self.figure].unit,
                "lower_is_better": FIGURES[self.figure].lower_is_better, "base": self.base,
                "candidate": self.candidate, "base_median": self.base_median,
                "candidate_median": self.candidate_median,
                "difference": None if self.interval is None else self.interval.estimate,
                "interval": None if self.interval is None else [self.interval.low, self.interval.high],
                "tolerance": self.tolerance, "censored": self.censored, "verdict": self.verdict}


@dataclass
class Comparison:
    base: RunSet
    candidate: RunSet
    figures: list[FigureComparison]
    confidence: float
    resamples: int
    seed: int
    tolerances: dict[str, Tolerance]
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[FigureComparison]:
        return [f for f in self.figures if f.verdict == REGRESSION]

    @property
    def judged(self) -> list[FigureComparison]:
        return [f for f in self.figures if f.verdict != TOO_FEW]

    def to_json(self) -> dict[str, Any]:
        def side(s: RunSet) -> dict[str, Any]:
            return {"spec": s.spec, "runs": [r.label for r in s.runs], "plans": s.distinct("plan"),
                    "commits": s.distinct("commit"), "seeds": s.distinct("seed")}

        return {"base": side(self.base), "candidate": side(self.candidate), "confidence": self.confidence,
                "resamples": self.resamples, "seed": self.seed, "regression": bool(self.regressions),
                "regressions": [f.id for f in self.regressions], "warnings": self.warnings,
                "tolerances": {k: {"absolute": t.absolute, "relative": t.relative}
                               for k, t in self.tolerances.items()},
                "figures": [f.to_json() for f in self.figures]}


def _seed(seed: int, suite: str, figure: str) -> int:
    """One bootstrap stream per figure: each interval is reproducible on its own, whatever else is compared."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{suite}:{figure}".encode()).digest()[:8], "big")


def _verdict(lower_is_better: bool, interval: Interval, tolerance: float) -> str:
    worse = 1.0 if lower_is_better else -1.0
    low, high = sorted((worse * interval.low, worse * interval.high))  # in the direction of "worse"
    if low > tolerance:
        return REGRESSION
    if low > 0:
        return WORSE_WITHIN
    if high < -tolerance:
        return IMPROVEMENT
    if high < 0:
        return BETTER_WITHIN
    return NO_CHANGE


def _warnings(base: RunSet, candidate: RunSet) -> list[str]:
    out = []
    plans = sorted(set(base.distinct("plan")) | set(candidate.distinct("plan")))
    if len(plans) > 1:
        out.append(f"the sets ran different plans ({', '.join(plans)}): only the figures both have are compared")
    for which, s in (("base", base), ("candidate", candidate)):
        seeds = s.distinct("seed")
        if len(seeds) > 1:
            out.append(f"the {which}'s runs have different seeds ({', '.join(map(str, seeds))}): their faults hit "
                       "different targets, which adds noise")
    if base.distinct("seed") != candidate.distinct("seed"):
        out.append(f"the sets ran with different seeds (base {base.distinct('seed')}, candidate "
                   f"{candidate.distinct('seed')}): use the same --seed for both")
    return out


def compare(base: RunSet, candidate: RunSet, *, tolerances: dict[str, Tolerance] | None = None,
            confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
            min_runs: int = MIN_RUNS, run_only: bool = False) -> Comparison:
    """Every figure both sets have (with `run_only`, the run-level ones alone)."""
    tolerances = tolerances or default_tolerances()
    keys = sorted(base.keys & candidate.keys,
                  key=lambda k: (k[0] != RUN, k[0], list(FIGURES).index(k[1]) if k[1] in FIGURES else 99))
    result = Comparison(base, candidate, [], confidence, resamples, seed, tolerances, _warnings(base, candidate))
    for suite, figure in keys:
        if figure not in FIGURES or (run_only and suite != RUN):
            continue
        b = [r.values[(suite, figure)] for r in base.runs if (suite, figure) in r.values]
        c = [r.values[(suite, figure)] for r in candidate.runs if (suite, figure) in r.values]
        bv, cv = [v.value for v in b], [v.value for v in c]
        item = FigureComparison(suite, figure, bv, cv, 0.0, TOO_FEW, censored=sum(v.censored for v in b + c))
        if bv and cv:
            item.base_median, item.candidate_median = median(bv), median(cv)
            item.tolerance = tolerances[figure].of(item.base_median)
        if len(bv) >= min_runs and len(cv) >= min_runs:
            item.interval = bootstrap_median_difference(bv, cv, confidence=confidence, resamples=resamples,
                                                        seed=_seed(seed, suite, figure))
            item.verdict = _verdict(FIGURES[figure].lower_is_better, item.interval, item.tolerance)
        result.figures.append(item)
    if not result.figures:
        raise UsageError("the two sets have no figure in common: were they runs of the same plan?")
    return result
