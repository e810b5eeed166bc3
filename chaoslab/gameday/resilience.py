"""A gameday's place in the history: its figures (per experiment, per fault window of overlapping faults, and for
the whole run), its score, its commit and seed, recorded in the lab's history (chaoslab.history.store), and the
report's section that shows the score and the trend of every figure over the plan's last runs.

Figures (chaoslab.history.figures) per experiment:
- time-to-detect: the slowest expected alert's, from the injection to the notification at the webhook; an
  expected alert that never came counts as the time waited for it (censored);
- time-to-recover: from the fault's undoing until the steady state held again; never: the time waited (censored);
- client error ratio and p99: what Locust's users saw while the fault lasted (the worst rolling 10 s p99);
- error budget spent: the gateway's availability budget the window cost (chaoslab.gameday.budget).
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import Any

from chaoslab.gameday import budget, score
from chaoslab.gameday.experiment import ExperimentResult
from chaoslab.gameday.result import GamedayResult
from chaoslab.history import chart, commit
from chaoslab.history.figures import FIGURES, RUN, TRENDED, Value, fmt, run_level
from chaoslab.history.store import History, RunRecord

HISTORY_SHOWN = 20  # runs of the plan in the report's charts


def _experiment_values(e: ExperimentResult, prometheus: str | None) -> list[Value]:
    out: list[Value] = []
    suite = e.name
    if e.alerts:
        detected = [a.time_to_detect_s for a in e.alerts if a.time_to_detect_s is not None]
        if len(detected) == len(e.alerts):
            out.append(Value(suite, "time_to_detect_s", max(detected)))
        elif e.fault is not None:
            out.append(Value(suite, "time_to_detect_s", round((e.ended or time.time()) - e.fault.start, 3), True))
    if e.recovery is not None and e.fault is not None:
        if e.recovery.recovered and e.recovery.seconds is not None:
            out.append(Value(suite, "time_to_recover_s", e.recovery.seconds))
        else:
            out.append(Value(suite, "time_to_recover_s", round(e.recovery.waited_until - e.fault.end, 3), True))
    if e.client is not None:
        if e.client.error_ratio is not None:
            out.append(Value(suite, "client_error_ratio", e.client.error_ratio))
        if e.client.p99_s is not None:
            out.append(Value(suite, "client_p99_s", e.client.p99_s))
    window = e.evidence_window
    if window is not None and prometheus:
        try:
            spent = budget.spent(prometheus, *window)
        except Exception:  # noqa: BLE001 - a figure Prometheus cannot give is left out, the run stands
            spent = None
        if spent is not None:
            out.append(Value(suite, "error_budget_spent", spent))
    for w in (e.combined or {}).get("windows", []):
        name = f"{suite}/{w['name']}"
        client = w.get("client") or {}
        for figure, value in (("time_to_detect_s", w.get("time_to_detect_s")), ("time_to_recover_s",
                              w.get("recovery_s")), ("client_error_ratio", client.get("error_ratio")),
                              ("client_p99_s", client.get("p99_s")), ("error_budget_spent",
                              w.get("error_budget_spent"))):
            if value is not None:
                out.append(Value(name, figure, float(value)))
    return out


def status_of(result: GamedayResult) -> str:
    verdicts = result.all_verdicts()
    if result.interrupted:
        return "interrupted"
    if any(v.status == "failed" for v in verdicts) or not verdicts:
        return "failed"
    return "inconclusive" if any(v.status == "inconclusive" for v in verdicts) else "passed"


def assess(result: GamedayResult, prometheus: str | None, state_dir: Path, *, seed: int | None,
           set_id: str | None = None, repetition: int | None = None) -> dict[str, Any]:
    """Score and figures of the run, recorded in the history of the lab in `state_dir`; what summary.json keeps
    under `resilience` (with the plan's last runs for the report's charts)."""
    verdicts = [v.to_json() for v in result.all_verdicts()]
    scored = score.compute(verdicts, result.plan.score)
    values = [v for e in result.experiments for v in _experiment_values(e, prometheus)]
    values += run_level(values, scored.value)
    sha = commit.current()
    data: dict[str, Any] = {
        "score": scored.to_json(), "weights": result.plan.score.model_dump(), "seed": seed,
        "commit": {"sha": sha.sha, "dirty": sha.dirty}, "set": {"id": set_id, "repetition": repetition},
        "figures": [v.to_json() for v in values], "history": [], "history_id": None,
    }
    history = History.of(state_dir)
    record = RunRecord(kind="gameday", name=result.plan.name, started=result.started, finished=result.finished,
                       status=status_of(result), score=scored.value, commit=sha.sha, dirty=sha.dirty, seed=seed,
                       set_id=set_id, repetition=repetition, run_dir=str(result.run_dir), source=result.plan.source,
                       details={"lab": result.lab, "notes": result.notes,
                                "schedules": {e.name: e.combined.get("schedule") for e in result.experiments
                                              if e.combined}},
                       verdicts=verdicts, figures=values)
    data["history_id"] = history.add(record)
    data["history"] = [{"id": r.id, "started": r.started, "status": r.status, "score": r.score,
                        "commit": r.commit, "seed": r.seed, "current": r.id == data["history_id"],
                        "figures": {v.figure: v.value for v in r.figures if v.suite == RUN}}
                       for r in history.runs(kind="gameday", name=result.plan.name, last=HISTORY_SHOWN)]
    return data


def section_html(data: dict[str, Any] | None) -> str:
    """The report's "Resilience" section: the score with its breakdown, the run's figures, and the trend of every
    figure over the plan's last runs in this lab's history."""
    if not data:
        return ""
    scored = data["score"]
    rows = "".join(
        f'<tr data-category="{escape(c["name"])}"><td>{escape(c["name"])}</td><td class="num">{c["weight"]:g}</td>'
        f'<td class="num">{c["verdicts"]}</td><td class="num">{c["failed"]}</td>'
        f'<td class="num">{"-" if c["credit"] is None else format(c["credit"], ".2f")}</td>'
        f'<td class="num">{c["points"]:.1f}</td></tr>' for c in scored["categories"])
    figures = "".join(f'<tr><td>{escape(v["suite"])}</td><td>{escape(FIGURES[v["figure"]].label)}</td>'
                      f'<td class="num">{escape(fmt(v["figure"], v["value"]))}'
                      f'{" (never; waited)" if v["censored"] else ""}</td></tr>'
                      for v in data["figures"] if v["figure"] in FIGURES)
    sha = data["commit"].get("sha") or "unknown"
    dirty = " (with uncommitted changes)" if data["commit"].get("dirty") else ""
    meta = (f'commit <code>{escape(sha[:12])}</code>{dirty}'
            f' · seed {escape(str(data["seed"]))}' + (f' · set <code>{escape(str(data["set"]["id"]))}</code>, '
                                                       f'repetition {data["set"]["repetition"]}'
                                                       if data["set"].get("id") else "")
            + f' · history run #{data["history_id"]}')
    charts = "".join(chart.trend_figure(name, [(h["id"], h["figures"].get(name), h["current"])
                                               for h in data["history"]]) for name in TRENDED)
    return (f'<h2 id="resilience">Resilience</h2>\n<p class="meta">{meta}</p>\n'
            f'<p><span class="score" id="score" data-score="{scored["value"]}">score {scored["value"]:.1f} / 100'
            f'</span>{" · " + escape(scored["note"]) if scored["note"] else ""}</p>\n'
            '<table id="score-breakdown"><tr><th>category</th><th>weight</th><th>verdicts</th><th>not passed</th>'
            f'<th>credit</th><th>points</th></tr>{rows}</table>\n'
            '<p class="meta">Each verdict earns 1 when it passes; a failed time or ratio earns partial credit, from 1 '
            'at its bound to 0 at twice its bound; inconclusive verdicts are left out. The score is 100 x the weighted '
            'mean of the categories the run has (docs/resilience.md).</p>\n'
            f'<details><summary>figures of this run</summary><table id="figures"><tr><th>suite</th><th>figure</th>'
            f'<th>value</th></tr>{figures}</table></details>\n'
            f'<h3 id="history">Over the plan\'s last {len(data["history"])} run(s) in this lab</h3>\n'
            f'<div class="history-charts" data-runs="{len(data["history"])}">{charts}</div>\n')
