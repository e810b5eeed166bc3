"""One experiment of a gameday: `chaos run` through the chaos package's runner (the load is already on), then
what the gameday measures around it: alerts at the webhook, time-to-recover, the client's view, the data
audit, and a quiet lab before the next experiment."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab import documents
from chaoslab.chaos import seeds
from chaoslab.clients.prometheus import Prometheus
from chaoslab.gameday import alerts, detection, measure, pipeline, verdicts
from chaoslab.gameday import noise as noise_
from chaoslab.gameday.evidence import TraceEvidence
from chaoslab.gameday.journal import Activity, FaultWindow, activities, fault_window
from chaoslab.gameday.plan import ExperimentSpec
from chaoslab.lab import faults, webhook
from chaoslab.lab.audit import data_audit
from chaoslab.lab.paths import LabPaths

POLL_S = 2.0
AUDIT_SETTLE_S = 10.0  # orders younger than this may still wait for their notification: in flight, not lost
AUDIT_TIMEOUT_S = 30.0
PAGE = "page"


@dataclass
class ExperimentResult:
    spec: ExperimentSpec
    index: int
    path: str = ""
    title: str = ""
    run_dir: str = ""
    started: float = 0.0
    chaos_ended: float | None = None
    ended: float | None = None
    chaos_exit_code: int | None = None
    chaos_verdict: dict[str, Any] | None = None
    fault: FaultWindow | None = None
    method: list[Activity] = field(default_factory=list)
    rollbacks: list[Activity] = field(default_factory=list)
    alerts: list[alerts.AlertOutcome] = field(default_factory=list)
    other_alerts: list[str] = field(default_factory=list)  # notified while it ran, not expected
    recovery: measure.Recovery | None = None
    client: measure.ClientView | None = None
    audit: dict[str, Any] | None = None
    still_firing: list[str] = field(default_factory=list)  # pages still firing when the settle time ran out
    evidence: list[TraceEvidence] = field(default_factory=list)
    predictions: list[detection.Prediction | None] = field(default_factory=list)  # one per expected alert
    blast_radius: list[str] = field(default_factory=list)  # the jobs its faults may take down
    journeys: dict[str, str] = field(default_factory=dict)  # "before"/"during": the compared journey's waterfall
    noise: noise_.Noise | None = None  # what Alertmanager said while it ran
    inhibitions: list[noise_.Inhibition] = field(default_factory=list)
    impairments: list[pipeline.Impairment] = field(default_factory=list)  # of the evidence, while it ran
    verdicts: list[verdicts.Verdict] = field(default_factory=list)
    error: str = ""
    combined: dict[str, Any] | None = None  # an entry of overlapping faults: its schedule, windows, attribution

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def evidence_window(self) -> tuple[float, float] | None:
        """From the injection until the steady state held again (or the run's end)."""
        if self.fault is None:
            return None
        end = self.recovery.at if self.recovery and self.recovery.at else (self.chaos_ended or self.fault.end)
        return self.fault.start, max(end, self.fault.start + measure.MIN_CLIENT_WINDOW_S)


@dataclass(frozen=True)
class Context:
    state_dir: Path
    runs_dir: Path  # where the chaos runner makes the experiment's run dir
    registry: dict[str, Any]
    seed: int | None = None  # the gameday's: each experiment draws from a seed derived from it and its name


def _declared(journal: dict[str, Any]) -> dict[str, int]:
    experiment = journal.get("experiment") or {}
    return {"method": sum(1 for a in experiment.get("method", []) if a.get("type") in ("action", "probe")),
            "rollbacks": len(experiment.get("rollbacks") or [])}


def _read_journal(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run_dir / "journal.json").read_text()))
    except (OSError, ValueError):
        return {}


def _notified(webhook_url: str, since: float) -> list[webhook.AlertEvent]:
    return webhook.events(webhook.notifications(webhook_url, since))


def _paging(prometheus: str) -> list[str]:
    """Page-severity alerts firing now: what would make the next experiment start from a degraded lab.
    Tickets (slow burns over long windows, an open breaker's tail) may fire on for minutes; they do not wait."""
    return sorted({f"{a['labels'].get('alertname')}{{{alerts.label_text(a['labels'])}}}"
                   for a in Prometheus(prometheus).alerts()
                   if a.get("state") == "firing" and a["labels"].get("severity") == PAGE})


def settle(result: ExperimentResult, ctx: Context, quiet: bool, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until every expected alert that fired has resolved at the webhook and, with `quiet` (another
    experiment follows), no page fires any more: at most `settle_s`, longer when an alert's resolve bound asks."""
    spec, window = result.spec, result.fault
    deadline = (result.chaos_ended or time.time()) + spec.settle_s
    if window is not None:
        for alert in spec.alerts:
            deadline = max(deadline, window.end + (alert.max_time_to_resolve_s or 0.0) + POLL_S)
    while True:
        seen = _notified(ctx.registry["webhook_url"], result.started)
        outcomes = [alerts.outcome(a, seen, window) for a in spec.alerts]
        firing = _paging(ctx.registry["prometheus_url"]) if quiet else []
        if all(o.resolved or not o.notified for o in outcomes) and not firing:
            result.still_firing = []
            break
        result.still_firing = firing
        if time.time() >= deadline:
            break
        sleep(POLL_S)


def run(index: int, spec: ExperimentSpec, ctx: Context, last: bool = False) -> ExperimentResult:
    """Run and judge one experiment. Any failure of the gameday itself becomes a failed verdict, never a crash:
    the next experiment still runs (after the lab is restored)."""
    from chaoslab.chaos.experiments import resolve
    from chaoslab.chaos.runner import RunOptions
    from chaoslab.chaos.runner import run as chaos_run

    result = ExperimentResult(spec, index, started=time.time())
    try:
        path = resolve(spec.experiment)
        result.path = str(path)
        result.title = str(documents.load_mapping(path, "an experiment").get("title", spec.name))
        chaos = chaos_run(RunOptions(path, ctx.state_dir, ctx.runs_dir, load=None, warmup_s=0.0,
                                     variables=dict(spec.vars),
                                     seed=None if ctx.seed is None else seeds.derive(ctx.seed, spec.name)))
        result.chaos_ended = time.time()
        result.run_dir = str(chaos.run_dir)
        result.chaos_exit_code = chaos.chaos_exit_code
        result.chaos_verdict = chaos.verdict.to_json()
        journal = _read_journal(chaos.run_dir)
        result.method, result.rollbacks = activities(journal), activities(journal, "rollbacks")
        result.fault = fault_window(journal, spec.fault_start, spec.fault_end)
        result.verdicts += verdicts.hypothesis_verdicts(spec.name, chaos.verdict, _declared(journal),
                                                        chaos.leftovers)
        result.blast_radius = sorted(pipeline.blast_radius(journal, ctx.registry.get("topology", "microservices")))
        _measure(result, ctx, quiet=not last)
        _judge_evidence(result, ctx)
    except Exception as exc:  # noqa: BLE001 - reported as the experiment's failure, with its type and message
        result.error = f"{exc.__class__.__name__}: {exc}"
        result.verdicts.append(verdicts.Verdict(spec.name, "gameday", False, detail=result.error))
        try:
            faults.restore(ctx.registry, faults.supervisor_of(ctx.state_dir))
        except Exception as again:  # noqa: BLE001
            result.error += f"; restoring the lab failed too: {again}"
    result.ended = time.time()
    return result


# Which verdicts rest on which part of the pipeline (by the verdict's name).
RESTS_ON = {
    pipeline.PROMETHEUS: ("alert ", "time-to-recover", "client "),
    # notifications that failed to go out are pages the receiver never counted: the noise verdicts rest on them too
    pipeline.ALERTMANAGER: ("alert ", "pages within budget", "no unexpected page"),
    pipeline.CLIENT: ("client ",),
    pipeline.TRACES: ("traces",),  # "traces: <hop> ..." and "traces" (no span at all)
}


def _judge_evidence(result: ExperimentResult, ctx: Context) -> None:
    """The pipeline's health over the experiment: what was impaired makes the verdicts resting on it inconclusive."""
    paths = LabPaths.of(ctx.state_dir)
    result.impairments = pipeline.watch(ctx.registry["prometheus_url"], result.started, time.time(),
                                        set(result.blast_radius), paths.spans, paths.logs)
    for impairment in result.impairments:
        prefixes = RESTS_ON[impairment.affects]
        verdicts.make_inconclusive([v for v in result.verdicts if v.name.startswith(prefixes)], impairment.reason)


BEFORE_S = 30.0  # the baseline a fault's traces are compared with: this long before the injection


def _prove_with_traces(result: ExperimentResult, ctx: Context, window: FaultWindow) -> list[verdicts.Verdict]:
    """The plan's trace expectations over the fault (until the steady state held again), and the journey's
    waterfall before and during it for the report."""
    from chaoslab.gameday.evidence import render_waterfall
    from chaoslab.gameday.traceproof import Spans

    spans_dir = LabPaths.of(ctx.state_dir).spans
    end = (result.evidence_window or (window.start, window.end))[1]
    during = Spans.between(spans_dir, window.start, end)
    before = Spans.between(spans_dir, window.start - BEFORE_S, window.start)
    journey = result.spec.traces.journey if result.spec.traces else ""
    for when, spans in (("before", before), ("during", during)):
        chosen = spans.journey(journey)
        result.journeys[when] = render_waterfall(chosen) if chosen else ""
    ports: dict[str, set[int]] = {}
    for service, entry in ctx.registry.get("services", {}).items():
        ports[service] = {int(a.rsplit(":", 1)[1]) for a in (entry.get("url"), entry.get("grpc_addr")) if a}
    return verdicts.trace_verdicts(result.spec.name, result.spec, during, before, ports)


def _listen(result: ExperimentResult, ctx: Context) -> None:
    """The noise of the experiment (every notification since it started) and the plan's inhibitions."""
    try:
        notes = webhook.notifications(ctx.registry["webhook_url"], result.started)
    except Exception:  # noqa: BLE001 - no notifications to count: the noise verdict says so
        return
    result.noise = noise_.count(notes)
    prometheus = Prometheus(ctx.registry["prometheus_url"], timeout_s=measure.PROMETHEUS_TIMEOUT_S)
    result.inhibitions = [noise_.inhibition(prometheus, notes, item.name, item.by, result.started, time.time())
                          for item in result.spec.inhibited]


def _prediction(alert: Any, seen: alerts.AlertOutcome, window: FaultWindow | None,
                prometheus: str) -> detection.Prediction | None:
    """What the alert's rule promises for this fault (None without a notification to compare it with)."""
    if window is None or seen.time_to_detect_s is None:
        return None
    end = max(window.end, window.start + seen.time_to_detect_s)
    try:
        return detection.predict(alert.name, alert.labels, detection.Pipeline.native(),
                                 prometheus=Prometheus(prometheus, timeout_s=measure.PROMETHEUS_TIMEOUT_S),
                                 start=window.start, end=end)
    except Exception:  # noqa: BLE001 - a prediction Prometheus cannot give is no prediction, not a crash
        return None


def _measure(result: ExperimentResult, ctx: Context, quiet: bool) -> None:
    spec, window = result.spec, result.fault
    prometheus = ctx.registry["prometheus_url"]
    if window is not None:
        result.recovery = measure.time_to_recover(prometheus, window, spec.steady, spec.max_time_to_recover_s)
    settle(result, ctx, quiet)
    seen = _notified(ctx.registry["webhook_url"], result.started)
    result.alerts = [alerts.outcome(a, seen, window) for a in spec.alerts]
    expected = [(a.name, a.labels) for a in spec.alerts]
    result.other_alerts = sorted({f"{e.name}{{{alerts.label_text(e.labels)}}}" for e in seen if e.status == "firing"
                                  and not any(e.name == n and all(e.labels.get(k) == v for k, v in ls.items())
                                              for n, ls in expected)})
    if window is not None:
        start, end = result.evidence_window or (window.start, window.end)
        result.client = measure.client_view(prometheus, start, end)
    if spec.data_audit:
        result.audit = data_audit(ctx.registry, settle_s=AUDIT_SETTLE_S, timeout_s=AUDIT_TIMEOUT_S)
    result.predictions = [_prediction(a, o, window, prometheus) for a, o in zip(spec.alerts, result.alerts,
                                                                                 strict=True)]
    name = spec.name
    result.verdicts += verdicts.alert_verdicts(name, spec, result.alerts)
    result.verdicts += verdicts.prediction_verdicts(name, spec, result.alerts, result.predictions)
    _listen(result, ctx)
    result.verdicts += verdicts.noise_verdicts(name, spec, result.noise, result.inhibitions)
    if spec.traces is not None and window is not None:
        result.verdicts += _prove_with_traces(result, ctx, window)
    result.verdicts.append(verdicts.recovery_verdict(name, spec, window, result.recovery))
    result.verdicts += verdicts.client_verdicts(name, spec, result.client)
    if spec.data_audit:
        result.verdicts.append(verdicts.audit_verdict(name, result.audit))
