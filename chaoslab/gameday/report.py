"""The HTML report: rendered from the run's JSON summary (so the two always agree), plus what JSON does not hold
(the charts' and the timeline's SVG, the trace waterfalls)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from chaoslab.gameday import resilience, svg
from chaoslab.gameday.console import bound_text, measured_text
from chaoslab.gameday.result import GamedayResult
from chaoslab.gameday.template import TEMPLATE
from chaoslab.gameday.verdicts import Verdict


def _verdict(data: dict[str, Any]) -> Verdict:
    return Verdict(data["suite"], data["name"], data["passed"], data.get("measured"), data.get("bound"),
                   data.get("unit", ""), data.get("detail", ""), bool(data.get("at_least")),
                   data.get("inconclusive", ""), data.get("predicted"))


def _mark(v: Verdict) -> Markup:
    cls, sign = {"inconclusive": ("warn", "?"), "passed": ("pass", "✔"), "failed": ("fail", "✘")}[v.status]
    return Markup(f'<td class="{cls}" title="{v.status}">{sign}</td>')


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update({
        "measured": lambda v: measured_text(v),
        "mark": _mark,
        "bound": lambda v: bound_text(v),
        "clock": svg.clock,
        "clock_at": lambda at, start: "-" if at is None else svg.clock(at - start),
        "secs": _secs, "ms": _ms, "pct": _pct, "g": lambda v: f"{v:g}",
        "utc": lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    })
    return env


def _rel(path: str | os.PathLike[str], base: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), base.resolve())
    except ValueError:
        return str(path)


def _load_phase(data: dict[str, Any] | None, base: Path) -> dict[str, Any] | None:
    if data is None:
        return None
    summary = data.get("summary") or None
    report = Path(data["run_dir"]) / "report.html"
    return {"name": data["name"], "scenario": data["scenario"], "error": data.get("error", ""),
            "summary": summary if summary and "total" in summary else None,
            "checks": (summary or {}).get("checks") or [], "passed": bool((summary or {}).get("passed")),
            "judged_on": (summary or {}).get("judged_on", ""),
            "report": _rel(report, base) if report.exists() else "", "dir": _rel(data["run_dir"], base)}


def context(result: GamedayResult) -> dict[str, Any]:
    data = result.to_json()
    base = result.run_dir
    experiments = []
    for item, exp in zip(data["experiments"], result.experiments, strict=True):
        evidence = {t.trace_id: t.waterfall_html for t in exp.evidence}
        journal = Path(item["run_dir"]) / "journal.json" if item["run_dir"] else None
        experiments.append({
            **item,
            "verdicts": exp.verdicts,
            "journeys": exp.journeys,
            "requests": [{**r, "waterfall_html": evidence.get(r["trace_id"], "")} for r in item["requests"]],
            "journal": _rel(journal, base) if journal and journal.exists() else "",
            "chaos_out": _rel(Path(item["run_dir"]) / "chaos.out", base) if item["run_dir"] else "",
        })
    phases = [_load_phase(data["load"]["baseline"], base), _load_phase(data["load"]["under_experiments"], base)]
    scaling = dict(data["scaling"]) if data["scaling"] else None
    if scaling is not None:
        scaling["rel_dir"] = _rel(scaling["run_dir"], base)
    return {
        "plan": data["plan"], "passed": data["passed"], "interrupted": data["interrupted"],
        "started": data["started"], "duration": data["duration_s"], "counts": data["counts"],
        "lab": data["lab"] or {"state_dir": "?", "base_port": "?", "started_by_gameday": False, "startup_s": None},
        "notes": data["notes"],
        "verdicts": [_verdict(v) for v in data["verdicts"]],
        "events": result.events(), "timeline_svg": svg.timeline(result.lanes()),
        "charts": result.charts, "experiments": experiments,
        "load_phases": [p for p in phases if p is not None], "scaling": scaling,
        "annotations": data["grafana_annotations"],
        "coverage": ({**data["coverage"], "page": _rel(Path(data["coverage"]["run_dir"]) / "coverage.html", base)}
                     if data.get("coverage") else None),
        "resilience_html": resilience.section_html(data.get("resilience"), data["experiments"]),
    }


def render(result: GamedayResult) -> str:
    return _environment().from_string(TEMPLATE).render(**context(result))
