"""compare's statistics (quick): the median, the quantile, the bootstrap interval of the difference of medians,
and the verdict each interval gets against a tolerance; the same inputs and seed give the same interval."""

from __future__ import annotations

import pytest

from chaoslab.compare import stats
from chaoslab.compare.judge import (
    BETTER_WITHIN,
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    WORSE_WITHIN,
    Tolerance,
    _verdict,
    parse_tolerances,
)
from chaoslab.errors import UsageError

pytestmark = pytest.mark.quick


def test_median_and_quantile() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert stats.quantile([0.0, 10.0], 0.25) == 2.5  # interpolated between ranks
    assert stats.quantile([1.0, 2.0, 3.0], 0.0) == 1.0 and stats.quantile([1.0, 2.0, 3.0], 1.0) == 3.0
    with pytest.raises(ValueError):
        stats.median([])


def test_three_runs_a_side_give_the_interval_of_complete_separation() -> None:
    """With N=3 the 95% interval of the difference of medians is [min(c) - max(b), max(c) - min(b)]: the median of
    three draws is the smallest value with probability 7/27, far above 2.5%."""
    base, candidate = [1.0, 1.2, 1.1], [2.0, 2.4, 2.2]
    interval = stats.bootstrap_median_difference(base, candidate, seed=1)
    assert interval.estimate == pytest.approx(1.1)
    assert interval.low == pytest.approx(2.0 - 1.2) and interval.high == pytest.approx(2.4 - 1.0)
    assert interval.excludes_zero()


def test_overlapping_sets_give_an_interval_that_holds_zero() -> None:
    interval = stats.bootstrap_median_difference([1.0, 2.0, 3.0, 2.5], [1.5, 2.2, 2.9, 2.0], seed=3)
    assert interval.low < 0 < interval.high and not interval.excludes_zero()


def test_the_interval_narrows_with_more_runs() -> None:
    few = stats.bootstrap_median_difference([1.0, 1.4, 1.2], [1.3, 1.7, 1.5], seed=5)
    many = stats.bootstrap_median_difference([1.0, 1.4, 1.2] * 6, [1.3, 1.7, 1.5] * 6, seed=5)
    assert many.high - many.low < few.high - few.low


def test_the_same_seed_gives_the_same_interval() -> None:
    base, candidate = [5.0, 7.0, 6.0, 9.0], [6.5, 8.0, 7.5, 7.0]
    first = stats.bootstrap_median_difference(base, candidate, seed=42)
    again = stats.bootstrap_median_difference(base, candidate, seed=42)
    other = stats.bootstrap_median_difference(base, candidate, seed=43, resamples=500)
    assert first == again
    assert other.resamples == 500


@pytest.mark.parametrize("bad", [{"confidence": 1.0}, {"confidence": 0.0}, {"resamples": 10}])
def test_bad_parameters_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_median_difference([1.0], [2.0], **bad)  # type: ignore[arg-type]


def _interval(low: float, high: float) -> stats.Interval:
    return stats.Interval((low + high) / 2, low, high, 0.95, 1000)


@pytest.mark.parametrize(("low", "high", "lower_is_better", "expected"), [
    (0.6, 1.0, True, REGRESSION),  # slower by 0.6-1.0 s, tolerance 0.5: worse even at the interval's best end
    (0.2, 1.0, True, WORSE_WITHIN),  # significantly slower, but maybe by less than the tolerance
    (-0.2, 1.0, True, NO_CHANGE),
    (-1.0, -0.6, True, IMPROVEMENT),
    (-0.4, -0.1, True, BETTER_WITHIN),
    (-1.0, -0.6, False, REGRESSION),  # a score that fell by 0.6-1.0 points
    (0.6, 1.0, False, IMPROVEMENT),
])
def test_a_regression_is_an_interval_wholly_beyond_the_tolerance(low: float, high: float, lower_is_better: bool,
                                                                  expected: str) -> None:
    assert _verdict(lower_is_better, _interval(low, high), 0.5) == expected


def test_tolerances_from_the_command_line() -> None:
    tolerances = parse_tolerances(["client_p99_s=0.25", "time_to_recover_s=20%"])
    assert tolerances["client_p99_s"] == Tolerance(0.25, 0.0)
    assert tolerances["time_to_recover_s"].of(30.0) == pytest.approx(6.0)
    assert tolerances["score"].of(80.0) == 5.0  # the default, untouched
    with pytest.raises(UsageError, match="did you mean 'client_p99_s'"):
        parse_tolerances(["client_p99=0.2"])
    with pytest.raises(UsageError, match="not a number"):
        parse_tolerances(["client_p99_s=fast"])
    with pytest.raises(UsageError, match="FIGURE=VALUE"):
        parse_tolerances(["client_p99_s"])
    with pytest.raises(UsageError, match="not negative"):
        parse_tolerances(["client_p99_s=-1"])
