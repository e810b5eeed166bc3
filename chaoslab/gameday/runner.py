"""A whole gameday: the lab up, a baseline load, every experiment of the plan under load, the optional scaling
check, then the evidence (traces, charts) and the run directory:

    runs/<time>-gameday-<plan>/
      summary.json  junit.xml  report.html  plan.yaml
      load/baseline/            Locust's CSV, HTML report and summary of the baseline
      load/experiments/         ... of the load under the experiments
      chaos/<time>-chaos-<experiment>/   journal.json, chaos.out, vars.json, verdict.json (the chaos runner's)
      scaling/                  scale-test's results (when the plan asks for it)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.markup import escape

from chaoslab.errors import ChaoslabError, LoadError
from chaoslab.gameday import (
    alerts,
    charts,
    combined,
    evidence,
    experiment,
    grafana,
    junit,
    loadphase,
    report,
    resilience,
    scaling,
)
from chaoslab.gameday.console import UI
from chaoslab.gameday.plan import Plan
from chaoslab.gameday.result import GamedayResult
from chaoslab.gameday.verdicts import Verdict
from chaoslab.lab import control, webhook
from chaoslab.lab.paths import LabPaths, new_run_dir

SLOWEST, FAILED = 2, 2  # requests shown per experiment, each with its waterfall and logs


@dataclass(frozen=True)
class Options:
    state_dir: Path
    runs_dir: Path = Path("runs")
    base_port: int | None = None  # when the lab has to be started
    down: bool = False  # stop the lab at the end when the gameday started it
    grafana_url: str | None = None
    grafana_token: str | None = None
    seed: int | None = None  # overrides the plan's (gameday --seed)
    set_id: str | None = None  # one of the repetitions of `gameday --repeat N`: the set's id ...
    repetition: int | None = None  # ... and which one (1..N)


def run(plan: Plan, opts: Options, ui: UI) -> GamedayResult:
    result = GamedayResult(plan, new_run_dir(opts.runs_dir, "gameday", plan.name), time.time())
    (result.run_dir / "plan.yaml").write_text(yaml.safe_dump(
        plan.model_dump(exclude={"source"}), sort_keys=False, width=120))
    ui.phase(f"gameday [bold]{plan.name}[/]: {len(plan.experiments)} experiment(s) under "
             f"{plan.load.scenario} load; run dir {result.run_dir}")
    session: control.Running | None = None
    try:
        session = _lab(plan, opts, ui, result)
        if session is not None:
            _drive(plan, opts, ui, result, session)
    except KeyboardInterrupt:
        result.interrupted = True
        ui.note("[red]interrupted[/]: the background load is stopped and the lab restored")
    finally:
        result.finished = time.time()
        if session is not None:
            _collect(result, session, opts, ui)  # before a --down: the lab's Prometheus holds the charts
        _assess(result, session, opts, ui)  # before a --down too: the error budget is read from Prometheus
        if session is not None:
            for note in control.give_back(session, opts.down):
                result.notes.append(note)
                ui.note(note)
        write(result)
    return result


def _lab(plan: Plan, opts: Options, ui: UI, result: GamedayResult) -> control.Running | None:
    ui.phase("making sure the lab is up" + (f" with {plan.lab.replicas}" if plan.lab.replicas else ""))
    try:
        session = control.ensure_running(opts.state_dir, opts.base_port, dict(plan.lab.replicas), restore=True,
                                         network_mode=plan.lab.network)
    except ChaoslabError as exc:  # could not start, or a running lab that cannot be made ready
        result.verdicts.append(Verdict("lab", "lab up and ready", False, detail=str(exc)))
        ui.note(f"[red]the lab is not usable[/]: {escape(str(exc))}")
        return None
    result.lab = {"state_dir": str(session.state_dir), "base_port": session.registry.get("base_port"),
                  "started_by_gameday": session.started, "startup_s": session.startup_s,
                  "scaled_for_the_plan": session.scaled_from,
                  "replicas": {s: len(v.get("replicas", [])) for s, v in session.registry["services"].items()}}
    ui.note(("started the lab" if session.started else "the lab was running") +
            f" in {session.state_dir} (base port {session.registry.get('base_port')})" +
            (f", {session.startup_s} s" if session.startup_s else "") +
            (f"; scaled for the plan: {plan.lab.replicas}" if session.scaled_from else ""))
    result.verdicts.append(Verdict("lab", "lab up and ready", True, session.startup_s, None, "s",
                                   "started by the gameday" if session.started else "already running"))
    return session


def _drive(plan: Plan, opts: Options, ui: UI, result: GamedayResult, session: control.Running) -> None:
    spec = plan.load
    if spec.baseline_s > 0:  # 0: no baseline (random chaos, short repetitions)
        ui.phase(f"baseline load: {spec.scenario} for {spec.baseline_s:g} s")
        result.baseline = loadphase.baseline(spec, session.state_dir, result.run_dir / "load" / "baseline",
                                             ui.console)
        failed = result.baseline.failed_checks()
        detail = result.baseline.error or "; ".join(f"{c['what']} {c['limit']}: {c['observed']}" for c in failed)
        result.verdicts.append(Verdict("baseline", "load thresholds", result.baseline.passed, detail=detail or
                                       f"{len((result.baseline.summary or {}).get('checks') or [])} checks held"))
        ui.verdicts([result.verdicts[-1]], "baseline")
    background = loadphase.Background(spec, session.state_dir, result.run_dir / "load" / "experiments")
    ui.phase(f"load under the experiments: {spec.scenario} in the background")
    try:
        background.start()
    except LoadError as exc:
        result.verdicts.append(Verdict("load", "background load", False, detail=str(exc)))
        return
    result.background = background.phase
    try:
        ui.wait(spec.warmup_s, "warming up: users sign up, the hypothesis windows fill")
        ctx = experiment.Context(session.state_dir, result.run_dir / "chaos", session.registry, _seed(plan, opts))
        topology = session.registry.get("topology", "microservices")
        chosen = [item for item in plan.experiments if topology in item.topologies]
        for item in plan.experiments:
            if item not in chosen:
                note = f"{item.name} left out: the plan runs it on {' and '.join(item.topologies)} only, not {topology}"
                result.notes.append(note)
                ui.note(note)
        for index, item in enumerate(chosen):
            ui.phase(f"[{index + 1}/{len(chosen)}] experiment [bold]{item.name}[/]")
            last = index == len(chosen) - 1
            if item.faults:  # faults on a clock, overlapping (chaoslab.gameday.combined)
                try:
                    outcome = combined.run(index, item, ctx, last=last, tell=ui.note)
                except combined.Interrupted as stop:  # every fault undone: keep what was judged, then stop
                    result.experiments.append(stop.partial)
                    raise
            else:
                with ui.watching(ctx.runs_dir, item.name):
                    outcome = experiment.run(index, item, ctx, last=last)
            result.experiments.append(outcome)
            ui.verdicts(outcome.verdicts, f"{item.name}: {'passed' if outcome.passed else 'FAILED'} "
                                          f"({(outcome.ended or outcome.started) - outcome.started:.0f} s)")
    finally:
        ui.phase("stopping the background load (Locust writes its reports)")
        background.stop()
    if plan.coverage is not None:
        _coverage(plan, ui, result, session)
    if plan.scaling is not None:
        ui.phase(f"scaling check: scale-test {plan.scaling.service} {plan.scaling.replicas}")
        result.scaling, verdict = scaling.run(plan.scaling, session.state_dir, result.run_dir / "scaling", ui.console)
        result.verdicts.append(verdict)


def _coverage(plan: Plan, ui: UI, result: GamedayResult, session: control.Running) -> None:
    """The plan's detection coverage: the matrix for the report, a verdict per fault that must be detected."""
    from chaoslab.gameday import coverage

    assert plan.coverage is not None
    spec = plan.coverage
    cells = coverage.plan_cells(spec.faults or None, spec.services or None,
                                isolated=session.registry.get("network", {}).get("mode") == "isolated")
    ui.phase(f"detection coverage: {len(cells)} fault(s), {spec.fault_s:g} s each")
    matrix, run_dir = coverage.run(session.state_dir, result.run_dir / "coverage", cells, fault_s=spec.fault_s,
                                   on_cell=lambda i, c: ui.note(f"[{i + 1}/{len(cells)}] {c.fault} {c.target}: "
                                                                f"{', '.join(c.alerts) or 'no alert'}"))
    (run_dir / "coverage.html").write_text(coverage.render(matrix))
    result.coverage = {**matrix.to_json(), "run_dir": str(run_dir)}
    for cell in matrix.cells:
        if cell.must_detect or cell.error:
            result.verdicts.append(Verdict("coverage", f"{cell.fault} {cell.target} detected", not cell.blind
                                           and not cell.error, detail=cell.error or
                                           f"{cell.must_detect}: {'seen' if cell.detected else 'NOT seen'}; fired: "
                                           f"{', '.join(cell.alerts) or 'nothing'}"))


def _collect(result: GamedayResult, session: control.Running, opts: Options, ui: UI) -> None:
    """After the run: every alert notified, the requests behind each experiment's numbers, the charts, and the
    fault windows in Grafana."""
    ui.phase("collecting alerts, traces and dashboard charts for the report")
    try:
        seen = webhook.events(webhook.notifications(session.registry["webhook_url"], result.started))
        result.alert_intervals = [i for i in alerts.intervals(seen) if i.fired_at >= result.started]
    except Exception as exc:  # noqa: BLE001 - the report says what is missing, the verdicts stand
        result.notes.append(f"alerts not collected: {exc}")
    paths = LabPaths.of(session.state_dir)
    try:
        requests = evidence.client_requests(paths.spans, result.started)
        for item in result.experiments:
            window = item.evidence_window
            if window is not None:
                item.evidence = [evidence.evidence(paths.spans, paths.logs, kind, s)
                                 for kind, s in evidence.pick(requests, *window, SLOWEST, FAILED)]
    except Exception as exc:  # noqa: BLE001
        result.notes.append(f"traces not collected: {exc}")
    end = result.finished or time.time()
    result.charts = charts.build_all(session.registry["prometheus_url"], result.started, end,
                                     result.fault_windows())
    if opts.grafana_url:
        notes = [grafana.Annotation(w.start, max(w.end, w.start + 1), f"gameday {result.plan.name}: {w.label}",
                                    (*grafana.TAGS, w.label)) for w in result.fault_windows()]
        result.annotations = grafana.post(opts.grafana_url, opts.grafana_token, notes)


def _seed(plan: Plan, opts: Options) -> int | None:
    return opts.seed if opts.seed is not None else plan.seed


def _assess(result: GamedayResult, session: control.Running | None, opts: Options, ui: UI) -> None:
    """The score and the figures, recorded in the lab's history (a history that cannot be written is a note: the
    run's own verdicts and files stand)."""
    try:
        result.resilience = resilience.assess(result, session.registry["prometheus_url"] if session else None,
                                              opts.state_dir, seed=_seed(result.plan, opts), set_id=opts.set_id,
                                              repetition=opts.repetition)
        ui.note(f"resilience score {result.resilience['score']['value']:.1f} / 100 (history run "
                f"#{result.resilience['history_id']})")
    except Exception as exc:  # noqa: BLE001
        result.notes.append(f"not recorded in the run history: {exc}")
        ui.note(f"[yellow]not recorded in the run history[/]: {escape(str(exc))}")


def write(result: GamedayResult) -> None:
    """summary.json first: the JUnit file and the report are rendered from the same record."""
    data = result.to_json()
    _atomic(result.run_dir / "summary.json", json.dumps(data, indent=2, default=str) + "\n")
    _atomic(result.run_dir / "junit.xml", junit.render(f"gameday {result.plan.name}", result.all_verdicts(),
                                                       result.suite_durations(),
                                                       {"plan": result.plan.name, "run_dir": str(result.run_dir)}))
    _atomic(result.run_dir / "report.html", report.render(result))


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
