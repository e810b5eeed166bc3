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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def faults_html(experiments: list[dict[str, Any]]) -> str:
    """Per entry of overlapping faults: each fault as planned and as played, what it cost, and which fault every
    alert was attributed to (and why)."""
    parts = []
    for e in experiments:
        combined = e.get("combined")
        if not combined:
            continue
        origin = (combined.get("outcome") or {}).get("started") or e.get("started") or 0.0  # the schedule's 0
        played = {w["name"]: w for w in combined.get("windows", [])}
        rows = []
        for item in (combined.get("outcome") or {}).get("faults", []):
            p, w = item["planned"], played.get(item["planned"]["name"], {})
            client = w.get("client") or {}
            rows.append(
                f'<tr class="scheduled-fault" data-fault="{escape(p["name"])}" data-state="{escape(item["state"])}">'
                f'<td>{escape(p["name"])}</td><td>{escape(p["kind"])}</td><td>{escape(p["target"])}</td>'
                f'<td>{escape(str(p["replica"]))}</td><td class="num">{p["at_s"]:g} s</td>'
                f'<td class="num">{p["duration_s"]:g} s</td><td class="num">{_secs(w.get("offset_s"))}</td>'
                f'<td>{escape(item["undone_by"] or item["state"])}</td>'
                f'<td class="num">{_secs(w.get("recovery_s"))}</td>'
                f'<td class="num">{_pct(client.get("error_ratio"))}</td>'
                f'<td class="num">{_pct(w.get("error_budget_spent"))}</td>'
                f'<td>{escape(", ".join(w.get("alerts") or [])) or "-"}</td>'
                f'<td>{escape(item["inject_error"] or item["undo_error"])}</td></tr>')
        alerts = "".join(
            f'<tr class="attribution" data-alert="{escape(a["name"])}" data-fault="{escape(a["fault"] or "")}">'
            f'<td>{escape(a["alert"])}</td><td class="num">{a["fired_at"] - origin:.1f} s</td>'
            f'<td>{escape(a["fault"] or "not attributed")}</td><td>{escape(a["reason"])}</td></tr>'
            for a in combined.get("attribution", []))
        parts.append(
            f'<h3 id="faults-{escape(e["name"])}">{escape(e["name"])}: faults on a clock (seed '
            f'{escape(str(combined.get("seed")))})</h3>'
            '<table class="schedule"><tr><th>fault</th><th>kind</th><th>target</th><th>replica</th><th>at</th>'
            '<th>for</th><th>started at</th><th>undone by</th><th>target recovered</th><th>client errors</th>'
            f'<th>budget spent</th><th>alerts attributed</th><th>error</th></tr>{"".join(rows)}</table>'
            '<p class="meta">Times from the entry\'s start. Each alert that fired is attributed to one fault: the one '
            'whose target it names, else one its service depends on (the call graph) that spent the most error '
            'budget, else the costliest fault acting (chaoslab/gameday/attribution.py).</p>'
            '<table class="attributions"><tr><th>alert</th><th>fired (notified)</th><th>fault</th><th>why</th></tr>'
            f'{alerts or "<tr><td colspan=4>no alert fired</td></tr>"}</table>')
    return "".join(parts)


def section_html(data: dict[str, Any] | None, experiments: list[dict[str, Any]] | None = None) -> str:
    """The report's "Resilience" section: the score with its breakdown, the run's figures, the trend of every
    figure over the plan's last runs in this lab's history, and each entry of overlapping faults as played."""
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
            f'<div class="history-charts" data-runs="{len(data["history"])}">{charts}</div>\n'
            + faults_html(experiments or []))
