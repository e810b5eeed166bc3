"""The gameday's verdicts: one per thing a CI gates on, each a JUnit test case and a row of the report.

Judging is pure: it reads what was collected (the chaos verdict, the fault window, alert outcomes, recovery,
the client's view, the data audit) and the plan's bounds, so tests can judge any collected run again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chaoslab.chaos.verdict import Step
from chaoslab.chaos.verdict import Verdict as ChaosVerdict
from chaoslab.gameday.alerts import AlertOutcome
from chaoslab.gameday.detection import Prediction
from chaoslab.gameday.journal import FaultWindow
from chaoslab.gameday.measure import ClientView, Recovery
from chaoslab.gameday.noise import Inhibition, Noise, unexpected_pages
from chaoslab.gameday.plan import ExperimentSpec
from chaoslab.gameday.traceproof import DEADLINE_SLACK_S, Spans


@dataclass
class Verdict:
    suite: str  # "baseline", an experiment's name, "scaling"
    name: str
    passed: bool
    measured: float | None = None
    bound: float | None = None
    unit: str = ""  # "s", "ratio", ""
    detail: str = ""
    at_least: bool = False  # the bound is a floor (an efficiency), not a ceiling (a time, a ratio)
    # Why the evidence behind this verdict cannot be trusted (the telemetry pipeline was impaired while it was
    # collected: chaoslab.gameday.pipeline). Such a verdict is neither passed nor failed, and never counts as passed.
    inconclusive: str = ""
    predicted: list[float] | None = None  # [earliest, latest] the rules allow (chaoslab.gameday.detection)

    @property
    def id(self) -> str:
        return f"{self.suite}: {self.name}"

    @property
    def status(self) -> str:
        return "inconclusive" if self.inconclusive else "passed" if self.passed else "failed"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id, "status": self.status}


def make_inconclusive(verdicts: list[Verdict], reason: str) -> None:
    """The evidence these verdicts rest on was impaired: they become inconclusive (never passed), with the reason.
    A verdict that failed on its own evidence stays inconclusive too: that evidence is what cannot be trusted."""
    for v in verdicts:
        v.inconclusive = reason if not v.inconclusive else f"{v.inconclusive}; {reason}"
        v.passed = False


def _failed_steps(steps: list[Step]) -> str:
    return "; ".join(f"{s.kind} {s.name} {s.status}" + (f" ({s.detail})" if s.detail else "")
                     for s in steps if not s.ok)


def _held(steps: list[Step]) -> str:
    return f"{len(steps)} probe(s) within tolerance"


def hypothesis_verdicts(suite: str, chaos: ChaosVerdict, declared: dict[str, int],
                        leftovers: dict[str, list[str]]) -> list[Verdict]:
    """Steady state before, the method under the fault ("during"), steady state after, and the run itself
    (completed, every rollback ran and succeeded, nothing left behind)."""
    by_phase: dict[str, list[Step]] = {}
    for step in chaos.steps:
        by_phase.setdefault(step.phase, []).append(step)
    before, after = by_phase.get("before", []), by_phase.get("after", [])
    during = by_phase.get("method", []) + by_phase.get("during", [])
    out = []
    before_ok = bool(before) and all(s.ok for s in before)
    out.append(Verdict(suite, "steady state before", before_ok,
                       detail=_failed_steps(before) or _held(before) if before
                       else "the hypothesis did not run before the method"))
    ran = len(by_phase.get("method", []))
    if not before_ok:
        during_detail = "the method did not run: the steady state was not met before it"
        during_ok = False
    else:
        during_ok = ran >= declared.get("method", 0) and all(s.ok for s in during)
        during_detail = _failed_steps(during) or (f"only {ran} of {declared.get('method', 0)} method activities "
                                                  "ran" if not during_ok else f"{ran} method activities succeeded")
    out.append(Verdict(suite, "during the fault", during_ok, detail=during_detail))
    after_ok = bool(after) and all(s.ok for s in after)
    out.append(Verdict(suite, "steady state after", after_ok,
                       detail=_failed_steps(after) or _held(after) if after
                       else "the hypothesis did not run after the method"))
    rollbacks = by_phase.get("rollback", [])
    problems = []
    if chaos.status != "completed":
        problems.append(f"run status {chaos.status}")
    if len(rollbacks) < declared.get("rollbacks", 0):
        problems.append(f"only {len(rollbacks)} of {declared.get('rollbacks', 0)} rollbacks ran")
    if any(not s.ok for s in rollbacks):
        problems.append(_failed_steps(rollbacks))
    if leftovers:
        problems.append("left behind: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in leftovers.items()))
    # A safety net: a chaos verdict failure none of the verdicts above explains still fails the run.
    if not problems and not chaos.passed and before_ok and during_ok and after_ok:
        problems.extend(chaos.failures)
    out.append(Verdict(suite, "run and rollbacks", not problems,
                       detail="; ".join(problems) or f"completed, {len(rollbacks)} rollback(s) succeeded"))
    return out


def alert_verdicts(suite: str, spec: ExperimentSpec, outcomes: list[AlertOutcome]) -> list[Verdict]:
    out = []
    for alert, seen in zip(spec.alerts, outcomes, strict=True):
        name = f"alert {alert.key}"
        out.append(Verdict(suite, f"{name} notified", seen.notified,
                           detail="" if seen.notified else "no firing notification reached the webhook receiver"))
        ttd = seen.time_to_detect_s
        out.append(Verdict(suite, f"{name} time-to-detect", ttd is not None and ttd <= alert.max_time_to_detect_s,
                           ttd, alert.max_time_to_detect_s, "s",
                           "" if ttd is not None else "not notified: nothing to measure"))
        if alert.must_resolve or alert.max_time_to_resolve_s is not None:
            ttr = seen.time_to_resolve_s
            bound = alert.max_time_to_resolve_s
            ok = seen.resolved and (bound is None or (ttr is not None and ttr <= bound))
            detail = "" if seen.resolved else ("it never fired" if not seen.notified
                                               else "no resolved notification reached the webhook receiver")
            out.append(Verdict(suite, f"{name} resolved", ok, ttr, bound, "s", detail))
    return out


def prediction_verdicts(suite: str, spec: ExperimentSpec, outcomes: list[AlertOutcome],
                        predictions: list[Prediction | None]) -> list[Verdict]:
    """Each notified alert's time-to-detect against the band its rule promises (chaoslab.gameday.detection)."""
    out = []
    for alert, seen, prediction in zip(spec.alerts, outcomes, predictions, strict=True):
        ttd = seen.time_to_detect_s
        if ttd is None:
            continue  # not notified: the time-to-detect verdict already fails
        name = f"alert {alert.key} detected as the rule predicts"
        if prediction is None:
            out.append(Verdict(suite, name, True, ttd, None, "s",
                               "no prediction: the rule's condition never held in Prometheus over the fault, or "
                               "the catalogue has no such rule"))
            continue
        ok, why = prediction.judge(ttd)
        lo, hi = prediction.band
        out.append(Verdict(suite, name, ok, ttd, round(hi, 3), "s", f"{why} ({prediction.model}: {prediction.how})",
                           predicted=[round(lo, 3), round(hi, 3)]))
    return out


def noise_verdicts(suite: str, spec: ExperimentSpec, noise: Noise | None,
                   inhibitions: list[Inhibition]) -> list[Verdict]:
    """Pages within the plan's budget, no page the plan did not expect or allow, and inhibition that held."""
    if noise is None:
        return [Verdict(suite, "no unexpected page", False, detail="the receiver's notifications could not be read")]
    out = []
    if spec.page_budget is not None:
        out.append(Verdict(suite, "pages within budget", noise.pages <= spec.page_budget, noise.pages,
                           spec.page_budget, "", f"{noise.pages} page notification(s) in {noise.groups} group(s) of "
                           f"{noise.notifications} notification(s): {', '.join(noise.paged) or 'none'}"))
    extra = unexpected_pages(noise, [(a.name, a.labels) for a in spec.alerts], spec.allowed_pages)
    out.append(Verdict(suite, "no unexpected page", not extra,
                       detail=f"paged without being expected or allowed: {', '.join(extra)}" if extra
                       else f"{noise.pages} page notification(s), all expected or allowed"))
    for item in inhibitions:
        name = f"alert {item.target} suppressed while {item.source} fires"
        if item.notified:
            out.append(Verdict(suite, name, False, detail=f"{len(item.notified)} notification(s) of {item.target} "
                               f"arrived while {item.source} fired: the inhibit rule did not hold"))
        elif not item.overlapped_s:
            out.append(Verdict(suite, name, False, inconclusive=f"{item.target} never fired in Prometheus while "
                               f"{item.source} did: nothing to inhibit"))
        else:
            out.append(Verdict(suite, name, True, detail=f"firing in Prometheus for {item.overlapped_s:.0f} s while "
                               f"{item.source} fired, and never notified"))
    return out


def trace_verdicts(suite: str, spec: ExperimentSpec, during: Spans | None, before: Spans | None,
                   ports: dict[str, set[int]]) -> list[Verdict]:
    """The plan's trace expectations, each a verdict, from the spans while the fault lasted (and before it)."""
    if spec.traces is None:
        return []
    if during is None or not during.spans:
        return [Verdict(suite, "traces", False, detail="no span was recorded while the fault lasted")]
    expect, out = spec.traces, []
    for hop in expect.breaker:
        refused = during.refusals(hop.service, hop.upstream)
        earlier = before.refusals(hop.service, hop.upstream) if before else 0
        out.append(Verdict(suite, f"traces: {hop.service} → {hop.upstream} breaker engaged", refused > 0 and not
                           earlier, refused, None, "", f"{refused} call(s) refused by the open breaker during the "
                           f"fault, {earlier} before it"))
    for hop in expect.max_attempts:
        counts = during.attempts(hop.service, hop.upstream, ports.get(hop.upstream, set()))
        worst = max(counts, default=0)
        assert hop.max is not None
        out.append(Verdict(suite, f"traces: {hop.service} → {hop.upstream} attempts per request", bool(counts) and
                           worst <= hop.max, worst, hop.max, "", f"over {len(counts)} request(s)" if counts else
                           "no call to it was traced during the fault"))
    for hop in expect.deadline:
        outlived = during.outlived(hop.service, hop.upstream)
        worst = max(outlived, default=0.0)
        out.append(Verdict(suite, f"traces: {hop.service} → {hop.upstream} deadline reached the upstream",
                           bool(outlived) and worst <= DEADLINE_SLACK_S, round(worst, 3), DEADLINE_SLACK_S, "s",
                           f"the upstream's span outlived its caller's by at most {worst:.2f} s over {len(outlived)} "
                           f"call(s)" if outlived else "no traced call reached the upstream"))
    names = during.names()
    for name in expect.spans:
        out.append(Verdict(suite, f"traces: span {name!r} seen", name in names,
                           detail="" if name in names else "no such span while the fault lasted"))
    return out


def recovery_verdict(suite: str, spec: ExperimentSpec, window: FaultWindow | None,
                     recovery: Recovery | None) -> Verdict:
    bound = spec.max_time_to_recover_s
    if window is None or recovery is None:
        return Verdict(suite, "time-to-recover", False, None, bound, "s", "no fault window: the fault never ran")
    if not recovery.recovered:
        return Verdict(suite, "time-to-recover", False, None, bound, "s",
                       f"the steady state did not hold again within {bound:g} s of {window.undone_by}")
    assert recovery.seconds is not None
    return Verdict(suite, "time-to-recover", recovery.seconds <= bound, recovery.seconds, bound, "s",
                   f"from {window.undone_by}")


def client_verdicts(suite: str, spec: ExperimentSpec, view: ClientView | None) -> list[Verdict]:
    budget = spec.client
    if view is None:
        return [Verdict(suite, "client error ratio", False, None, budget.max_error_ratio, "ratio",
                        "no fault window: nothing was measured")]
    ratio = view.error_ratio
    out = [Verdict(suite, "client error ratio", ratio is not None and ratio <= budget.max_error_ratio, ratio,
                   budget.max_error_ratio, "ratio",
                   f"{view.failures} of {view.requests} requests failed" if ratio is not None
                   else "Locust sent no request during the fault")]
    for label, value, bound in (("p95", view.p95_s, budget.max_p95_s), ("p99", view.p99_s, budget.max_p99_s)):
        if bound is not None:
            out.append(Verdict(suite, f"client {label} latency", value is not None and value <= bound, value, bound,
                               "s", "worst rolling 10 s percentile while the fault lasted"
                               if value is not None else "no latency sample"))
    return out


def audit_verdict(suite: str, audit: dict[str, Any] | None) -> Verdict:
    if audit is None:
        return Verdict(suite, "data audit", False, detail="the audit could not run")
    problems = [f"{k} {audit[k]}" for k in ("missing_payment", "payment_mismatch", "duplicate_payment",
                                            "missing_notification", "duplicate_notification",
                                            "payment_without_order") if audit.get(k)]
    detail = (f"{audit.get('orders', 0)} orders, {audit.get('payments', 0)} payments, "
              f"{audit.get('notifications', 0)} notifications")
    return Verdict(suite, "data audit", bool(audit.get("ok")), detail="; ".join(problems) or detail)


def summary(verdicts: list[Verdict]) -> dict[str, int]:
    inconclusive = sum(1 for v in verdicts if v.inconclusive)
    failed = sum(1 for v in verdicts if not v.passed and not v.inconclusive)
    return {"total": len(verdicts), "passed": len(verdicts) - failed - inconclusive, "failed": failed,
            "inconclusive": inconclusive}
