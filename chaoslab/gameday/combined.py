"""A plan entry whose faults overlap (`faults:` instead of `experiment:`), e.g. a payments replica killed while the
broker is out; `chaoslab chaos random` runs its seeded schedule as one such entry.

The faults are played on a clock by chaoslab.chaos.scheduler (injected and undone with the extension's actions,
under the safeguard, every one undone however the run ends). Then the entry is judged twice:

- as a whole, the way an experiment is (chaoslab.gameday.experiment._measure, over the window from the first
  injection to the last undoing): time-to-recover, the expected alerts, the clients' errors and latency, the data
  audit; plus "steady state before" (the lab ready, the gateway's error ratio under budget, before any fault),
  "safeguard" (the error budget never burned past its limit) and "run and rollbacks" (every fault undone, nothing
  left behind);
- per fault: "injected", "rolled back", its target's time-to-recover (from its own undoing until its target is up
  and within its error budget again), the clients' error ratio (and p99, when bounded) over its own window, and
  for every expected alert attributed to it (`fault:` in the plan) that the alert was attributed to that fault
  (chaoslab.gameday.attribution), measured from that fault's own injection.

Every alert that fired is attributed (summary.json `combined.attribution`, the report), expected or not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from chaoslab.chaos import scheduler, seeds
from chaoslab.chaos.schedule import BROKER, ONE_REPLICA, Planned, problems, topology
from chaoslab.clients.prometheus import Prometheus
from chaoslab.errors import LabError
from chaoslab.gameday import alerts, attribution, budget, experiment, measure
from chaoslab.gameday.experiment import Context, ExperimentResult
from chaoslab.gameday.journal import Activity, FaultWindow
from chaoslab.gameday.plan import ExperimentSpec, SteadySpec
from chaoslab.gameday.verdicts import Verdict, client_verdicts
from chaoslab.lab import faults, webhook
from chaoslab.lab.probes import all_ready, broker_serving
from chaoslab.observability import slos

Tell = Callable[[str], None]
# "steady state before" waits this long for the lab to be steady: a run started right after another (a Ctrl-C'd
# random run, the previous repetition) still has the last one's errors in its error-ratio window.
STEADY_WAIT_S = 30.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during an entry of faults, raised once every fault was undone: carries what was judged so far."""

    def __init__(self, partial: ExperimentResult) -> None:
        super().__init__("interrupted")
        self.partial = partial


def schedule_of(spec: ExperimentSpec, services: dict[str, int], seed: int | None) -> list[Planned]:
    """The entry's faults as a schedule; a kill or pause without a replica gets one drawn from the seed."""
    rng = random.Random(seeds.derive(seed, spec.name)) if seed is not None else random.Random()
    out = []
    for f in spec.faults:
        draw = rng.random()  # drawn for every fault: one fault given a replica must not shift the next one's draw
        replica: int | str = f.replica if f.replica is not None else (
            1 + int(draw * max(1, services.get(f.target, 1))) if f.kind in ONE_REPLICA else "all")
        out.append(Planned(f.name, f.kind, f.target, f.at_s, f.duration_s, replica, dict(f.params)))
    return out


def _steady_before(ctx: Context, spec: ExperimentSpec) -> Verdict:
    reg = ctx.registry
    deadline = time.time() + STEADY_WAIT_S
    while True:
        problems_ = []
        if not broker_serving(reg):
            problems_.append("the broker is not serving")
        if not all_ready(reg):
            problems_.append("not every replica is ready")
        ratio = Prometheus(reg["prometheus_url"], timeout_s=measure.PROMETHEUS_TIMEOUT_S).scalar(
            slos.http_error_ratio(spec.steady.window, 'service="gateway"'), empty=0.0) or 0.0
        if ratio > spec.steady.max_error_ratio:
            problems_.append(f"the gateway's error ratio over {spec.steady.window} is {ratio:.2%}")
        if not problems_ or time.time() >= deadline:
            break
        time.sleep(measure.SCRAPE_S)
    return Verdict(spec.name, "steady state before", not problems_, round(ratio, 5), spec.steady.max_error_ratio,
                   "ratio", "; ".join(problems_) or "every replica ready, the broker serving, the gateway's errors "
                                                   "under budget")


def run(index: int, spec: ExperimentSpec, ctx: Context, last: bool = False,
        tell: Tell | None = None) -> ExperimentResult:
    """Play and judge the entry. A failure of the gameday itself is a failed verdict, never a crash; Ctrl-C
    raises Interrupted (after every fault was undone) with the partial result."""
    say = tell or (lambda _: None)
    result = ExperimentResult(spec, index, started=time.time())
    try:
        services = topology(ctx.registry)
        schedule = schedule_of(spec, services, ctx.seed)
        isolated = ctx.registry.get("network", {}).get("mode") == "isolated"
        found = problems(schedule, services, isolated)
        if found:
            raise LabError("the faults cannot run on this lab: " + "; ".join(found))
        result.title = f"{len(schedule)} fault(s) on a clock: " + "; ".join(
            f"{p.name} at {p.at_s:g} s for {p.duration_s:g} s" for p in schedule)
        before = _steady_before(ctx, spec)
        result.verdicts.append(before)
        if not before.passed:
            result.combined = {"seed": ctx.seed, "schedule": [p.to_json() for p in schedule], "windows": [],
                               "attribution": [], "skipped": "the steady state did not hold before the faults"}
            result.verdicts.append(Verdict(spec.name, "during the fault", False,
                                           detail="the faults did not run: the steady state was not met before"))
            result.ended = time.time()
            return result
        guard = scheduler.Safeguard(spec.safeguard.service, spec.safeguard.max_burn_rate, spec.safeguard.window)
        outcome = scheduler.play(schedule, ctx.state_dir, guard, say)
        result.chaos_ended = time.time()
        _record(result, schedule, outcome, ctx)
        if outcome.interrupted:
            result.error = "interrupted (Ctrl-C): every fault was undone"
            raise KeyboardInterrupt
        experiment._measure(result, ctx, quiet=not last)
        _per_fault(result, outcome, ctx)
    except KeyboardInterrupt:
        result.error = result.error or "interrupted (Ctrl-C)"
        result.ended = time.time()
        raise Interrupted(result) from None
    except Exception as exc:  # noqa: BLE001 - reported as the entry's failure, with its type and message
        result.error = f"{exc.__class__.__name__}: {exc}"
        result.verdicts.append(Verdict(spec.name, "gameday", False, detail=result.error))
        try:
            faults.restore(ctx.registry, faults.supervisor_of(ctx.state_dir))
        except Exception as again:  # noqa: BLE001
            result.error += f"; restoring the lab failed too: {again}"
    result.ended = time.time()
    return result


def _record(result: ExperimentResult, schedule: list[Planned], outcome: scheduler.Outcome, ctx: Context) -> None:
    """The run as the report and the verdicts see it: the union window, activities, per-fault verdicts."""
    spec, name = result.spec, result.spec.name
    started = [e for e in outcome.executed if e.window is not None]
    if started:
        first = min(started, key=lambda e: e.window[0])  # type: ignore[index]
        last = max(started, key=lambda e: e.window[1])  # type: ignore[index]
        result.fault = FaultWindow(first.window[0], last.window[1], first.planned.name,  # type: ignore[index]
                                   last.planned.name)
    for e in started:
        result.method.append(Activity(f"{e.planned.name}: {e.planned.describe()}", "action",
                                      "failed" if e.inject_error else "succeeded", e.inject_started or 0.0,
                                      e.inject_ended or 0.0))
        if e.undo_started is not None:
            result.rollbacks.append(Activity(f"{e.planned.name}: undo ({e.undone_by})", "action",
                                             "failed" if e.undo_error else "succeeded", e.undo_started,
                                             e.undo_ended or e.undo_started))
    for e in outcome.executed:
        p = e.planned
        if not e.started:  # the safeguard or Ctrl-C stopped the run first: judged there, not once per fault
            continue
        at = (e.inject_started or outcome.started) - outcome.started
        result.verdicts.append(Verdict(name, f"{p.name}: injected", not e.inject_error,
                                       detail=e.inject_error or f"{p.describe()} at {at:.1f} s (planned {p.at_s:g} s)"))
        undone = e.undo_started is not None and not e.undo_error
        what = "running again" if p.instant else f"undone by the {e.undone_by}"
        result.verdicts.append(Verdict(name, f"{p.name}: rolled back", undone or (p.instant and bool(e.inject_error)),
                                       detail=e.undo_error or (what if undone else "nothing to roll back")))
    trip = outcome.trip
    result.verdicts.append(Verdict(
        name, "safeguard", trip is None, trip.burn_rate if trip else outcome.max_burn_rate,
        spec.safeguard.max_burn_rate, "",
        f"{trip.service} burned its error budget at {trip.burn_rate:g}x over {trip.window} at "
        f"{trip.at - outcome.started:.1f} s: every fault undone, the rest skipped" if trip else
        f"{spec.safeguard.service}'s burn rate over {spec.safeguard.window} stayed at most "
        f"{outcome.max_burn_rate if outcome.max_burn_rate is not None else '?'}x"))
    problems_ = [f"{e.planned.name}: {e.undo_error}" for e in outcome.executed if e.undo_error]
    if outcome.leftovers:
        problems_.append("left behind (now undone): " + "; ".join(f"{k}: {', '.join(v)}"
                                                                   for k, v in outcome.leftovers.items()))
    if outcome.interrupted:
        problems_.insert(0, "interrupted (Ctrl-C): every fault undone")
    skipped = [e.planned.name for e in outcome.executed if not e.started]
    never = f"; {len(skipped)} never started, the run stopped first: {', '.join(skipped)}" if skipped else ""
    result.verdicts.append(Verdict(name, "run and rollbacks", not problems_,
                                   detail=("; ".join(problems_) or f"{len(started)} fault(s) played and undone, "
                                                                   "nothing left behind") + never))
    result.combined = {"seed": ctx.seed, "schedule": [p.to_json() for p in schedule], "outcome": outcome.to_json(),
                       "safeguard": spec.safeguard.model_dump(), "windows": [], "attribution": []}


def _series(prom: Prometheus, expr: str, start: float, end: float, combine: str) -> dict[float, float]:
    return measure._by_time(prom.query_range(expr, start, end, 1.0), combine)


def target_recovery(prom: Prometheus, target: str, undone_at: float, steady: SteadySpec,
                    bound_s: float, now: float) -> tuple[float | None, str]:
    """Seconds from the undoing until the target is up and within its error budget for `hold_s` (the steady
    state of the target alone: other faults may still act elsewhere); None with why when it was not."""
    end = min(now, undone_at + bound_s + steady.hold_s + 2 * measure.SCRAPE_S)
    if target == BROKER:
        up_q, errors_q = f'min(up{{job="{slos.BROKER_JOB}"}})', None
    else:
        up_q = f'min(up{{{slos.SERVICE_JOBS_MATCHER}, service="{target}"}})'
        errors_q = slos.error_ratio(target, steady.window)
    up = _series(prom, up_q, undone_at, end, "min")
    errors = _series(prom, errors_q, undone_at, end, "max") if errors_q else {}
    at = measure.first_steady(up, errors, undone_at, steady.max_error_ratio, steady.hold_s)
    if at is not None:
        return round(max(0.0, at - undone_at), 3), ""
    if end < undone_at + bound_s:
        return None, f"the run ended {end - undone_at:.0f} s after the undoing, before {target} was steady"
    return None, f"{target} was not steady again within {bound_s:g} s"


def _per_fault(result: ExperimentResult, outcome: scheduler.Outcome, ctx: Context) -> None:
    spec, name = result.spec, result.spec.name
    assert result.combined is not None
    prometheus = ctx.registry["prometheus_url"]
    prom = Prometheus(prometheus, timeout_s=measure.PROMETHEUS_TIMEOUT_S)
    now = time.time()
    played = [e for e in outcome.executed if e.window is not None and not e.inject_error]
    spans = [attribution.Span(e.planned.name, e.planned.target, *e.window) for e in played]  # type: ignore[misc]
    windows = []
    for e in played:
        p = e.planned
        start, end = e.window  # type: ignore[misc]
        window: dict[str, Any] = {"name": p.name, "kind": p.kind, "target": p.target, "replica": p.replica,
                                  "planned_at_s": p.at_s, "planned_duration_s": p.duration_s,
                                  "start": start, "end": end, "offset_s": round(start - outcome.started, 3),
                                  "undone_by": e.undone_by,
                                  "overlaps": [s.name for s in spans if s.name != p.name and s.start < end
                                               and start < s.end]}
        seconds, why = target_recovery(prom, p.target, end, spec.steady, spec.max_time_to_recover_s, now)
        window["recovery_s"] = seconds
        result.verdicts.append(Verdict(name, f"{p.name}: time-to-recover", seconds is not None and
                                       seconds <= spec.max_time_to_recover_s, seconds, spec.max_time_to_recover_s,
                                       "s", why or f"{p.target} up and within budget again"))
        view = measure.client_view(prometheus, start, max(end, start + measure.MIN_CLIENT_WINDOW_S))
        window["client"] = asdict(view)
        for verdict in client_verdicts(name, spec, view):
            verdict.name = f"{p.name}: {verdict.name}"
            if window["overlaps"]:
                verdict.detail += f" (overlapping {', '.join(window['overlaps'])})"
            result.verdicts.append(verdict)
        window["error_budget_spent"] = budget.spent(prometheus, start, max(end, start + budget.MIN_WINDOW_S))
        windows.append(window)
    # who caused which alert, once every window's cost is known (a burn-rate alert goes to the costliest fault)
    spent = {w["name"]: w["error_budget_spent"] or 0.0 for w in windows}
    spans = [attribution.Span(s.name, s.target, s.start, s.end, spent.get(s.name, 0.0)) for s in spans]
    seen = webhook.events(webhook.notifications(ctx.registry["webhook_url"], result.started))
    fired = [i for i in alerts.intervals(seen) if i.fired_at >= result.started]
    attributed = attribution.attribute(fired, spans)
    result.combined["attribution"] = [a.to_json() for a in attributed]
    for window in windows:
        mine = [a for a in attributed if a.fault == window["name"]]
        window["alerts"] = [a.alert for a in mine]
        window["time_to_detect_s"] = round(min(a.fired_at for a in mine) - window["start"], 3) if mine else None
    result.combined["windows"] = windows
    _attribution_verdicts(result, outcome, attributed)


def _attribution_verdicts(result: ExperimentResult, outcome: scheduler.Outcome,
                          attributed: list[attribution.Attribution]) -> None:
    """For every expected alert with `fault:`: it fired after that fault's injection, was attributed to it, within
    its time-to-detect bound counted from that fault's own injection."""
    spec, name = result.spec, result.spec.name
    starts = {e.planned.name: e.window[0] for e in outcome.executed if e.window is not None}
    for alert in spec.alerts:
        if alert.fault is None:
            continue
        label = f"{alert.fault}: alert {alert.key} attributed"
        start = starts.get(alert.fault)
        if start is None:
            result.verdicts.append(Verdict(name, label, False, None, alert.max_time_to_detect_s, "s",
                                           f"{alert.fault} was never injected"))
            continue
        match = next((a for a in attributed if a.name == alert.name and a.fired_at >= start
                      and all(a.labels.get(k) == v for k, v in alert.labels.items())), None)
        if match is None:
            result.verdicts.append(Verdict(name, label, False, None, alert.max_time_to_detect_s, "s",
                                           f"it did not fire after {alert.fault} was injected"))
            continue
        ttd = round(match.fired_at - start, 3)
        ok = match.fault == alert.fault and ttd <= alert.max_time_to_detect_s
        detail = (f"attributed to {match.fault or 'no fault'} ({match.reason})" if match.fault != alert.fault
                  else f"{match.reason}; notified {ttd:.1f} s after {alert.fault}'s injection")
        result.verdicts.append(Verdict(name, label, ok, ttd, alert.max_time_to_detect_s, "s", detail))
