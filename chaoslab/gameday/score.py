"""The resilience score: one number per run, 0-100, computed from its verdicts with weights per category.

Why a number at all: a pass/fail per run hides how far a run was from its bounds and makes "better or worse than
last week" a matter of reading tables. The score sums what every verdict earned, weighted by what the verdict is
about. The weights come from the plan (`score:`), the defaults below; docs/resilience.md explains each.

How a verdict earns credit (0..1):
- passed: 1;
- failed with a measured value against a ceiling (a time, a ratio): partial credit that falls linearly from 1 at
  the bound to 0 at twice the bound (a recovery of 18 s against 15 s earns 0.8), so a near miss and a rout differ;
- failed with a measured value against a floor (an efficiency): measured / bound;
- failed without a measurement (an alert that never came, a rollback that failed): 0;
- inconclusive (the evidence itself was impaired): left out, neither credit nor blame; the breakdown counts it.

A category's credit is the mean of its verdicts' credits; the score is 100 x the weighted mean over the categories
the run has (a plan that expects no alert is not scored on detection: its weight is shared by the others).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Categories, in the order the report lists them.
DATA, CLIENT, RECOVERY, DETECTION, HYPOTHESIS, CAPACITY = (
    "data", "client", "recovery", "detection", "hypothesis", "capacity")
CATEGORIES = (DATA, CLIENT, RECOVERY, DETECTION, HYPOTHESIS, CAPACITY)
NOT_SCORED = ("lab",)  # "lab up and ready": without a lab nothing ran; the score is then 0, not undefined


class Weights(BaseModel):
    """A plan's `score:` block: how much each category counts (any non-negative numbers; they are normalised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: float = Field(25.0, ge=0)  # an acknowledged order lost or paid twice: the one damage nobody can undo
    client: float = Field(25.0, ge=0)  # what the users saw: errors and latency while the fault lasted
    recovery: float = Field(20.0, ge=0)  # back to the steady state, within bounds, every fault rolled back
    detection: float = Field(15.0, ge=0)  # the right alert, notified in time, resolved afterwards
    hypothesis: float = Field(10.0, ge=0)  # the experiments' own expectations (before, during, the run itself)
    capacity: float = Field(5.0, ge=0)  # the baseline's load thresholds and the scaling check


def category(suite: str, name: str) -> str | None:
    """What a verdict is about, from its suite and name (chaoslab.gameday.verdicts and .combined name them)."""
    if suite in NOT_SCORED:
        return None
    if suite in ("baseline", "scaling", "load"):
        return CAPACITY
    last = name.rsplit(": ", 1)[-1]  # a combined run's per-fault verdicts are "<fault>: <verdict>"
    if last == "data audit":
        return DATA
    if last.startswith("client "):
        return CLIENT
    if last.startswith("alert ") or last.startswith("detection"):
        return DETECTION
    if last in ("time-to-recover", "steady state after", "rolled back", "run and rollbacks"):
        return RECOVERY
    return HYPOTHESIS  # steady state before, during the fault, injected, safeguard, gameday (it crashed), ...


def credit(verdict: Mapping[str, Any]) -> float | None:
    """What one verdict (its JSON: passed, measured, bound, at_least, inconclusive) earns; None: not scored."""
    if verdict.get("inconclusive"):
        return None
    if verdict.get("passed"):
        return 1.0
    measured, bound = verdict.get("measured"), verdict.get("bound")
    if measured is None or bound is None or bound <= 0:
        return 0.0
    if verdict.get("at_least"):
        return max(0.0, min(1.0, float(measured) / float(bound)))
    over = (float(measured) - float(bound)) / float(bound)
    return max(0.0, min(1.0, 1.0 - over))


@dataclass
class CategoryScore:
    name: str
    weight: float
    verdicts: int = 0
    failed: int = 0
    inconclusive: int = 0
    credit: float | None = None  # mean credit of its verdicts; None when it has none
    points: float = 0.0  # its share of the 100


@dataclass
class Score:
    value: float  # 0-100, one decimal
    categories: list[CategoryScore] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "note": self.note, "categories": [asdict(c) for c in self.categories]}


def compute(verdicts: Iterable[Mapping[str, Any]], weights: Weights | None = None) -> Score:
    """The score of a run from its verdicts (as summary.json holds them)."""
    weights = weights or Weights()
    table = {name: CategoryScore(name, float(getattr(weights, name))) for name in CATEGORIES}
    credits: dict[str, list[float]] = {name: [] for name in CATEGORIES}
    lab_failed = False
    for verdict in verdicts:
        suite, name = str(verdict.get("suite", "")), str(verdict.get("name", ""))
        if suite == "lab" and not verdict.get("passed") and not verdict.get("inconclusive"):
            lab_failed = True
        which = category(suite, name)
        if which is None:
            continue
        row = table[which]
        row.verdicts += 1
        earned = credit(verdict)
        if earned is None:
            row.inconclusive += 1
            continue
        if earned < 1.0:
            row.failed += 1
        credits[which].append(earned)
    for name, row in table.items():
        if credits[name]:
            row.credit = sum(credits[name]) / len(credits[name])
    present = [row for row in table.values() if row.credit is not None and row.weight > 0]
    total_weight = sum(row.weight for row in present)
    if lab_failed:
        return Score(0.0, list(table.values()), "the lab was not usable: nothing ran")
    if not present or total_weight <= 0:
        return Score(0.0, list(table.values()), "no scored verdict")
    for row in present:
        row.points = round(100.0 * row.weight / total_weight * (row.credit or 0.0), 2)
    value = round(100.0 * sum(row.weight * (row.credit or 0.0) for row in present) / total_weight, 1)
    return Score(value, list(table.values()))
