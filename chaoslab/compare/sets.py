"""The two sides of a comparison: sets of gameday runs, read from run directories (every summary.json with
figures under a folder: a `gameday --repeat` set directory, a runs/ folder, or one run) or from a lab's history
(a set id, or a commit: every gameday of that commit). Directories work across machines and labs (CI compares
what two worktrees wrote); the history is handy on one lab."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.errors import ChaoslabError, UsageError
from chaoslab.history.figures import Value
from chaoslab.history.store import History, RunRecord

COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")


@dataclass
class RunFigures:
    label: str  # where it came from: its run directory's name, or history#id
    plan: str
    seed: int | None
    commit: str | None
    values: dict[tuple[str, str], Value] = field(default_factory=dict)  # (suite, figure) -> value


@dataclass
class RunSet:
    spec: str  # as the user gave it
    runs: list[RunFigures]

    def distinct(self, attribute: str) -> list[Any]:
        return sorted({getattr(r, attribute) for r in self.runs}, key=str)

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {k for r in self.runs for k in r.values}


def _from_summary(path: Path, data: dict[str, Any]) -> RunFigures | None:
    resilience = data.get("resilience")
    plan = data.get("plan")
    if not isinstance(resilience, dict) or not isinstance(plan, dict) or "figures" not in resilience:
        return None  # a Locust summary.json, or a gameday from before the history
    values = {}
    for item in resilience["figures"]:
        value = Value.of(item)
        values[(value.suite, value.figure)] = value
    commit = (resilience.get("commit") or {}).get("sha")
    return RunFigures(path.parent.name, str(plan.get("name", "?")), resilience.get("seed"), commit, values)


def from_directory(path: Path) -> list[RunFigures]:
    files = [path] if path.is_file() else sorted(path.rglob("summary.json"))
    runs = []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and (run := _from_summary(file, data)) is not None:
            runs.append(run)
    return sorted(runs, key=lambda r: r.label)


def _from_record(record: RunRecord) -> RunFigures:
    return RunFigures(f"history#{record.id}", record.name, record.seed, record.commit,
                      {(v.suite, v.figure): v for v in record.figures})


def load(spec: str, state_dir: Path, plan: str | None = None) -> RunSet:
    """A set from `spec`: a path (a folder of runs, or one summary.json), else a set id or a commit in the history
    of the lab in `state_dir`. `plan` keeps only that plan's runs. UsageError when nothing matches."""
    path = Path(spec)
    if path.exists():
        runs = from_directory(path)
        where = f"under {path}"
    else:
        history = History.of(state_dir)
        try:
            records = history.runs(kind="gameday", set_id=spec)
            if not records and COMMIT.match(spec):
                records = history.runs(kind="gameday", commit=spec)
            known = history.set_ids()[-5:]
        except ChaoslabError as exc:
            raise UsageError(f"{spec!r} is neither a folder of runs nor found in a run history: {exc.message}",
                             hint="give a set directory (gameday --repeat prints it), a run directory, or a set id "
                                  "or commit with --state-dir of the lab that ran it") from None
        if not records:
            raise UsageError(f"{spec!r} is neither a folder of runs nor a set id or commit in the history of "
                             f"{history.path.parent}", hint="known sets: " + (", ".join(known) or "none yet"))
        runs = [_from_record(r) for r in records]
        where = f"in the history of {history.path.parent}"
    if plan is not None:
        runs = [r for r in runs if r.plan == plan]
    if not runs:
        raise UsageError(f"no gameday run with figures {where}" + (f" for plan {plan!r}" if plan else ""),
                         hint="chaoslab gameday --repeat N --seed S writes a set directory with N runs")
    return RunSet(spec, runs)
