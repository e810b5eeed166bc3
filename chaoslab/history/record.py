"""Recording the runs that are not gamedays: a `chaoslab chaos run` (kind experiment) and a `chaoslab load` run
(kind load). A gameday records itself (chaoslab.gameday.resilience), with its figures and score.

An experiment's verdicts are the gameday's hypothesis verdicts of its journal (before, during, after, the run and
its rollbacks); its figures are its own measurements (time_to_recover, time_to_detect or time_to_notify) and what
its background load saw. A load run's verdicts are its thresholds; its figures, its error ratio and p99.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaoslab.gameday import score
from chaoslab.gameday.verdicts import Verdict, hypothesis_verdicts
from chaoslab.history import commit
from chaoslab.history.figures import RUN, Value, run_level
from chaoslab.history.store import History, RunRecord

MEASURES = {"time_to_recover": "time_to_recover_s", "time_to_detect": "time_to_detect_s",
            "time_to_notify": "time_to_detect_s"}


def _declared(journal: Path) -> dict[str, int]:
    try:
        experiment = json.loads(journal.read_text()).get("experiment") or {}
    except (OSError, ValueError):
        return {}
    return {"method": sum(1 for a in experiment.get("method", []) if a.get("type") in ("action", "probe")),
            "rollbacks": len(experiment.get("rollbacks") or [])}


def _client(summary: dict[str, Any] | None, suite: str) -> list[Value]:
    out = []
    if summary and summary.get("error_ratio") is not None:
        out.append(Value(suite, "client_error_ratio", float(summary["error_ratio"])))
    if summary and summary.get("p99_s") is not None:
        out.append(Value(suite, "client_p99_s", float(summary["p99_s"])))
    return out


def experiment_run(state_dir: Path, name: str, source: str, run_dir: Path, started: float, finished: float,
                   seed: int | None) -> RunRecord:
    """Record a `chaos run` from its run directory (verdict.json, journal.json)."""
    from chaoslab.chaos.runner import judge

    data = json.loads((run_dir / "verdict.json").read_text())
    verdict = judge(run_dir / "journal.json", run_dir / "chaos.out")
    verdicts = hypothesis_verdicts(name, verdict, _declared(run_dir / "journal.json"), data.get("leftovers") or {})
    if data.get("interrupted") or not data.get("passed", verdict.passed):
        for failure in data.get("failures") or []:  # what the runner added: Ctrl-C, a safeguard, leftovers
            if not any(failure in v.detail for v in verdicts):
                verdicts.append(Verdict(name, "run", False, detail=failure))
    values: list[Value] = []
    for item in data.get("measurements") or []:
        figure = MEASURES.get(str(item.get("measure")))
        if figure and item.get("seconds") is not None:
            values.append(Value(name, figure, float(item["seconds"])))
    values += _client(data.get("load"), name)
    by_key: dict[tuple[str, str], Value] = {}
    for v in values:  # one value per figure: the worst (two recoveries measured: the slower counts)
        if (v.suite, v.figure) not in by_key or v.value > by_key[(v.suite, v.figure)].value:
            by_key[(v.suite, v.figure)] = v
    as_json = [v.to_json() for v in verdicts]
    scored = score.compute(as_json)
    figures = list(by_key.values())
    figures += run_level(figures, scored.value)
    status = "interrupted" if data.get("interrupted") else "passed" if data.get("passed") else "failed"
    sha = commit.current()
    record = RunRecord("experiment", name, started, status, finished, scored.value, sha.sha, sha.dirty, seed,
                       run_dir=str(run_dir), source=source, details={"load": data.get("load")}, verdicts=as_json,
                       figures=figures)
    History.of(state_dir).add(record)
    return record


def load_run(state_dir: Path, scenario: str, run_dir: Path, summary: dict[str, Any], started: float,
             finished: float) -> RunRecord:
    """Record a `chaoslab load` run from Locust's summary (loadtests/summary.py: total, checks, passed)."""
    verdicts = [Verdict("load", str(c.get("what", "?")), bool(c.get("ok")),
                        detail=f"{c.get('limit', '')}: observed {c.get('observed', '')}").to_json()
                for c in summary.get("checks") or []]
    total = summary.get("total") or {}
    values = []
    requests = int(total.get("requests") or 0)
    if requests:
        values.append(Value(RUN, "client_error_ratio", round(int(total.get("failures") or 0) / requests, 6)))
    if total.get("p99_ms") is not None:
        values.append(Value(RUN, "client_p99_s", round(float(total["p99_ms"]) / 1000, 4)))
    scored = score.compute(verdicts)
    values.append(Value(RUN, "score", scored.value))
    sha = commit.current()
    record = RunRecord("load", scenario, started, "passed" if summary.get("passed") else "failed", finished,
                       scored.value, sha.sha, sha.dirty, run_dir=str(run_dir),
                       details={"requests": requests}, verdicts=verdicts, figures=values)
    History.of(state_dir).add(record)
    return record
