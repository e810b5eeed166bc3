"""The figures a run is tracked and compared on: what each measures, its unit, which way is better, and the
tolerance `chaoslab compare` allows before it calls a difference a regression.

Each run records its figures per suite (an experiment's name, a combined entry's name, or a fault window) and once
for the whole run (suite RUN): the worst over its suites for times and ratios, the sum for the error budget spent
(budgets add up over a run), and the run's score.

Default tolerances: a difference is only a regression when the whole confidence interval lies beyond
max(absolute, relative x the base's median). The absolute floors are what this lab can resolve at all: Prometheus
scrapes every 2 s, so times closer than 2 s are one scrape apart; Locust's percentiles move by ~0.1 s between two
quiet runs; an error ratio of 1% is the steady state's own budget. The relative 50% is the run-to-run noise seen
here with N=3 on a busy 2-core machine (docs/resilience.md has the numbers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RUN = "run"  # the suite of the run-level figures


@dataclass(frozen=True)
class Figure:
    name: str
    label: str
    unit: str  # "s", "ratio", "points"
    lower_is_better: bool
    abs_tolerance: float
    rel_tolerance: float
    combine: str  # how the run-level value is made from the suites': "max" (the worst) or "sum"


FIGURES: dict[str, Figure] = {f.name: f for f in (
    Figure("time_to_detect_s", "time-to-detect", "s", True, 2.0, 0.5, "max"),
    Figure("time_to_recover_s", "time-to-recover", "s", True, 2.0, 0.5, "max"),
    Figure("client_error_ratio", "client error ratio", "ratio", True, 0.01, 0.5, "max"),
    Figure("client_p99_s", "client p99", "s", True, 0.1, 0.5, "max"),
    Figure("error_budget_spent", "error budget spent", "ratio", True, 0.02, 0.5, "sum"),
    Figure("score", "resilience score", "points", False, 5.0, 0.0, "max"),
)}
TRENDED = ("score", "time_to_detect_s", "time_to_recover_s", "client_error_ratio", "client_p99_s",
           "error_budget_spent")


@dataclass(frozen=True)
class Value:
    """One figure of one suite of one run. `censored`: the thing never happened within what was waited for (an
    alert never notified, a steady state never back): the value is the time waited, a lower bound."""

    suite: str
    figure: str
    value: float
    censored: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "figure": self.figure, "value": self.value, "censored": self.censored}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Value:
        return cls(str(data["suite"]), str(data["figure"]), float(data["value"]), bool(data.get("censored")))


def run_level(values: Iterable[Value], score: float | None) -> list[Value]:
    """The run-level figures (suite RUN) from the suites' values, plus the score."""
    by_figure: dict[str, list[Value]] = {}
    for v in values:
        if v.suite != RUN:
            by_figure.setdefault(v.figure, []).append(v)
    out = []
    for name, found in by_figure.items():
        figure = FIGURES[name]
        if figure.combine == "sum":
            out.append(Value(RUN, name, round(sum(v.value for v in found), 6), any(v.censored for v in found)))
        else:
            worst = max(found, key=lambda v: v.value if figure.lower_is_better else -v.value)
            out.append(Value(RUN, name, worst.value, worst.censored))
    if score is not None:
        out.append(Value(RUN, "score", float(score)))
    return out


def fmt(figure: str, value: float | None) -> str:
    """A value as people read it: 3.2 s, 1.25%, 87.5."""
    if value is None:
        return "-"
    unit = FIGURES[figure].unit if figure in FIGURES else ""
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "s":
        return f"{value:.2f} s" if abs(value) < 10 else f"{value:.1f} s"
    return f"{value:.1f}"
