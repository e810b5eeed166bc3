"""Everything one gameday collected, its timeline, and its JSON summary (summary.json: the record every other
artifact is rendered from, so the summary, the JUnit file and the report cannot disagree)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.gameday import svg
from chaoslab.gameday.alerts import AlertInterval, identity, label_text
from chaoslab.gameday.charts import Chart
from chaoslab.gameday.experiment import ExperimentResult
from chaoslab.gameday.loadphase import LoadPhase
from chaoslab.gameday.plan import Plan
from chaoslab.gameday.verdicts import Verdict, summary

LOAD_COLOR, EXPERIMENT_COLOR, FAULT_COLOR, ALERT_COLOR, SCALING_COLOR = (
    "#2563eb", "#9ca3af", "#f59e0b", "#dc2626", "#16a34a")


@dataclass
class Event:
    at: float
    kind: str  # "load", "experiment", "fault", "alert", "lab", "scaling"
    text: str


@dataclass
class GamedayResult:
    plan: Plan
    run_dir: Path
    started: float
    finished: float | None = None
    lab: dict[str, Any] = field(default_factory=dict)
    baseline: LoadPhase | None = None
    background: LoadPhase | None = None
    experiments: list[ExperimentResult] = field(default_factory=list)
    scaling: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None  # the fault x alert matrix, when the plan asks for it
    verdicts: list[Verdict] = field(default_factory=list)  # baseline, scaling, and the gameday's own
    alert_intervals: list[AlertInterval] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    annotations: dict[str, Any] | None = None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    resilience: dict[str, Any] | None = None  # score, figures, seed, commit, history (chaoslab.gameday.resilience)

    def all_verdicts(self) -> list[Verdict]:
        head = [v for v in self.verdicts if v.suite in ("lab", "baseline")]
        tail = [v for v in self.verdicts if v.suite not in ("lab", "baseline")]
        return head + [v for e in self.experiments for v in e.verdicts] + tail

    @property
    def passed(self) -> bool:
        verdicts = self.all_verdicts()
        return bool(verdicts) and all(v.passed for v in verdicts) and not self.interrupted

    @property
    def duration_s(self) -> float:
        return round((self.finished or self.started) - self.started, 1)

    def fault_windows(self) -> list[svg.Window]:
        out = []
        for e in self.experiments:
            windows = (e.combined or {}).get("windows", [])
            out += [svg.Window(w["start"], w["end"], f"{e.name}: {w['name']}") for w in windows]
            if e.fault is not None and not windows:
                out.append(svg.Window(e.fault.start, e.fault.end, e.name))
        return out

    def suite_durations(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.baseline is not None and self.baseline.end is not None:
            out["baseline"] = self.baseline.end - self.baseline.start
        for e in self.experiments:
            out[e.name] = (e.ended or e.started) - e.started
        if self.scaling is not None:
            out["scaling"] = float(self.scaling.get("seconds", 0.0))
        return out

    # --- the timeline ----------------------------------------------------------------------------------------

    def events(self) -> list[Event]:
        out = [Event(self.started, "lab", "gameday started")]
        for phase in (self.baseline, self.background):
            if phase is not None:
                out.append(Event(phase.start, "load", f"load {phase.name} started ({phase.scenario})"))
                if phase.end is not None:
                    out.append(Event(phase.end, "load", f"load {phase.name} stopped"))
        for e in self.experiments:
            out.append(Event(e.started, "experiment", f"{e.name} started"))
            if e.fault is not None:
                out.append(Event(e.fault.start, "fault", f"{e.name}: fault injected ({e.fault.injected_by})"))
                out.append(Event(e.fault.end, "fault", f"{e.name}: fault undone ({e.fault.undone_by})"))
            for w in (e.combined or {}).get("windows", []):
                out.append(Event(w["start"], "fault", f"{e.name}: {w['name']} injected ({w['kind']} {w['target']})"))
                out.append(Event(w["end"], "fault", f"{e.name}: {w['name']} undone ({w['undone_by']})"))
            for a in (e.combined or {}).get("attribution", []):
                out.append(Event(a["fired_at"], "alert", f"{a['alert']} → {a['fault'] or 'no fault'} ({a['reason']})"))
            if e.recovery is not None and e.recovery.at is not None:
                out.append(Event(e.recovery.at, "fault", f"{e.name}: steady state holds again"))
            if e.ended is not None:
                out.append(Event(e.ended, "experiment", f"{e.name} ended: {'passed' if e.passed else 'FAILED'}"))
        for interval in self.alert_intervals:
            labels = label_text(interval.labels)
            out.append(Event(interval.fired_at, "alert", f"{interval.name} {labels} fired (notified)"))
            if interval.resolved_at is not None:
                out.append(Event(interval.resolved_at, "alert", f"{interval.name} {labels} resolved (notified)"))
        if self.scaling is not None and self.scaling.get("start"):
            out.append(Event(self.scaling["start"], "scaling", f"scale-test {self.scaling.get('service')} started"))
        if self.finished is not None:
            out.append(Event(self.finished, "lab", "gameday finished"))
        return sorted(out, key=lambda ev: ev.at)

    def lanes(self) -> svg.Lanes:
        end = self.finished or self.started + 1
        lanes = svg.Lanes(self.started, end)
        for phase in (self.baseline, self.background):
            if phase is not None:
                lanes.bars.append(svg.Bar("load", phase.start, phase.end, LOAD_COLOR,
                                          f"load {phase.name} ({phase.scenario})"))
        for e in self.experiments:
            lanes.bars.append(svg.Bar("experiments", e.started, e.ended, EXPERIMENT_COLOR, e.name))
            for window in (e.combined or {}).get("windows", []):  # overlapping faults: one lane per target
                lanes.bars.append(svg.Bar(f"fault on {window['target']}", window["start"],
                                          max(window["end"], window["start"] + 1), FAULT_COLOR,
                                          f"{window['name']} ({window['kind']})"))
            if e.fault is not None and not e.combined:
                lanes.bars.append(svg.Bar("faults", e.fault.start, max(e.fault.end, e.fault.start + 1), FAULT_COLOR,
                                          f"{e.name}: {e.fault.injected_by} → {e.fault.undone_by}"))
        if self.scaling is not None and self.scaling.get("start"):
            lanes.bars.append(svg.Bar("scaling", self.scaling["start"], self.scaling.get("end"), SCALING_COLOR,
                                      f"scale-test {self.scaling.get('service')}"))
        for interval in self.alert_intervals:
            lane = identity(interval.name, interval.labels)
            lanes.bars.append(svg.Bar(lane, interval.fired_at, interval.resolved_at, ALERT_COLOR,
                                      f"{interval.name} {label_text(interval.labels)}"))
        return lanes

    # --- JSON ------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        verdicts = self.all_verdicts()
        return {
            "plan": {"name": self.plan.name, "description": self.plan.description, "source": self.plan.source},
            "passed": self.passed,
            "interrupted": self.interrupted,
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "counts": summary(verdicts),
            "verdicts": [v.to_json() for v in verdicts],
            "lab": self.lab,
            "load": {"baseline": self.baseline.to_json() if self.baseline else None,
                     "under_experiments": self.background.to_json() if self.background else None},
            "experiments": [_experiment_json(e) for e in self.experiments],
            "scaling": self.scaling,
            "coverage": self.coverage,
            "alerts": [asdict(i) for i in self.alert_intervals],
            "timeline": [asdict(ev) for ev in self.events()],
            "charts": [c.to_json() for c in self.charts],
            "grafana_annotations": self.annotations,
            "notes": self.notes,
            "resilience": self.resilience,
            "files": {"summary": "summary.json", "junit": "junit.xml", "report": "report.html"},
        }


def _experiment_json(e: ExperimentResult) -> dict[str, Any]:
    return {
        "name": e.name, "experiment": e.spec.experiment, "path": e.path, "title": e.title, "run_dir": e.run_dir,
        "vars": e.spec.vars, "passed": e.passed, "started": e.started, "chaos_ended": e.chaos_ended,
        "ended": e.ended, "chaos_exit_code": e.chaos_exit_code, "error": e.error,
        "fault": asdict(e.fault) if e.fault else None,
        "alerts": [{**asdict(a), "bounds": spec.model_dump(), "predicted": p.to_json() if p else None}
                   for a, spec, p in zip(e.alerts, e.spec.alerts, e.predictions or [None] * len(e.alerts),
                                         strict=False)],
        "other_alerts": e.other_alerts, "still_firing_after_settle": e.still_firing,
        "recovery": asdict(e.recovery) if e.recovery else None,
        "max_time_to_recover_s": e.spec.max_time_to_recover_s,
        "client": asdict(e.client) if e.client else None, "client_budget": e.spec.client.model_dump(),
        "audit": e.audit,
        "blast_radius": e.blast_radius,
        "noise": e.noise.to_json() if e.noise else None,
        "inhibitions": [i.to_json() for i in e.inhibitions],
        "page_budget": e.spec.page_budget, "allowed_pages": e.spec.allowed_pages,
        "impairments": [i.to_json() for i in e.impairments],
        "requests": [t.to_json() for t in e.evidence],
        "method": [asdict(a) for a in e.method], "rollbacks": [asdict(a) for a in e.rollbacks],
        "chaos_verdict": e.chaos_verdict, "combined": e.combined,
        "verdicts": [v.id for v in e.verdicts],
    }
