"""The verdict of a `chaos run`, computed from its journal alone.

`chaos run` exits 0 for runs a gate must fail (../shared/notes/chaostoolkit.md): the hypothesis missed before
the method (which is then skipped), a method activity raised, a hypothesis missed while the method ran. So the
verdict reads the journal: the status, `deviated`, the steady state before, during and after, every activity
of the method and every rollback, and it checks that each declared part actually ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    phase: str  # "before", "during", "method", "after", "rollback"
    name: str
    kind: str  # "probe", "action", "hypothesis"
    status: str  # "succeeded", "failed", "missed", "skipped", ...
    ok: bool
    seconds: float | None = None
    detail: str = ""


@dataclass
class Verdict:
    title: str
    status: str  # the journal's status
    deviated: bool
    passed: bool
    failures: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _run_step(phase: str, run: dict[str, Any]) -> Step:
    activity = run.get("activity", {})
    # an activity cut short by a signal (a safeguard) is journaled without a status
    status = str(run.get("status") or "interrupted")
    if run.get("exception"):
        # chaoslib wraps the error once more: "ActivityFailed: ActivityFailed: message" -> "message"
        detail = _short(run["exception"][-1].rsplit("ActivityFailed: ", 1)[-1])
    else:
        detail = "" if run.get("output") is None else _short(run["output"])
    return Step(phase, str(activity.get("name", "?")), str(activity.get("type", "?")), status,
                status == "succeeded", run.get("duration"), detail)


def _hypothesis_steps(phase: str, state: dict[str, Any]) -> list[Step]:
    steps = []
    for run in state.get("probes", []):
        step = _run_step(phase, run)
        if step.ok and run.get("tolerance_met") is False:
            step.status, step.ok = "missed", False
        steps.append(step)
    return steps


def _measurements(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        output = run.get("output")
        if isinstance(output, dict) and "measure" in output and "seconds" in output:
            item = {"activity": run.get("activity", {}).get("name", "?"), **output}
            out.append(item)
    return out


def _check_hypothesis(verdict: Verdict, journal: dict[str, Any], has_hypothesis: bool) -> None:
    states = journal.get("steady_states") or {}
    before, after, during = states.get("before"), states.get("after"), states.get("during") or []
    if not has_hypothesis:
        return
    if before is None:
        verdict.failures.append("the steady-state hypothesis never ran before the method")
    else:
        verdict.steps.extend(_hypothesis_steps("before", before))
        if not before.get("steady_state_met"):
            verdict.failures.append("steady state not met before the method (the method was skipped)")
    for state in during:
        verdict.steps.extend(_hypothesis_steps("during", state))
    missed_during = sum(1 for s in during if not s.get("steady_state_met"))
    if missed_during:
        verdict.failures.append(f"steady state missed {missed_during} time(s) while the method ran")
    if before is not None and before.get("steady_state_met"):
        if after is None:
            verdict.failures.append("the steady-state hypothesis did not run after the method")
        else:
            verdict.steps.extend(_hypothesis_steps("after", after))
            if not after.get("steady_state_met"):
                verdict.failures.append("steady state not met after the method")


def _check_method(verdict: Verdict, journal: dict[str, Any], experiment: dict[str, Any]) -> None:
    runs = journal.get("run") or []
    verdict.steps.extend(_run_step("method", r) for r in runs)
    for run in runs:
        if run.get("status") != "succeeded":
            name = run.get("activity", {}).get("name", "?")
            verdict.failures.append(f"method {run.get('activity', {}).get('type', 'activity')} {name!r} "
                                    f"{run.get('status') or 'interrupted'}")
    declared = [a for a in experiment.get("method", []) if a.get("type") in ("action", "probe")]
    before = (journal.get("steady_states") or {}).get("before")
    method_skipped = before is not None and not before.get("steady_state_met")
    if not method_skipped and len(runs) < len(declared):
        verdict.failures.append(f"only {len(runs)} of {len(declared)} method activities ran")


def _check_rollbacks(verdict: Verdict, journal: dict[str, Any], experiment: dict[str, Any]) -> None:
    rollbacks = journal.get("rollbacks") or []
    verdict.steps.extend(_run_step("rollback", r) for r in rollbacks)
    for run in rollbacks:
        if run.get("status") != "succeeded":
            verdict.failures.append(f"rollback {run.get('activity', {}).get('name', '?')!r} "
                                    f"{run.get('status') or 'interrupted'}")
    declared = experiment.get("rollbacks") or []
    if len(rollbacks) < len(declared):
        verdict.failures.append(f"only {len(rollbacks)} of {len(declared)} rollbacks ran")


def compute(journal: dict[str, Any]) -> Verdict:
    experiment = journal.get("experiment") or {}
    status = str(journal.get("status"))
    verdict = Verdict(title=str(experiment.get("title", "?")), status=status,
                      deviated=bool(journal.get("deviated")), passed=False, duration_s=journal.get("duration"))
    if status != "completed":
        hint = " (a safeguard or a signal stopped it)" if status == "interrupted" else ""
        verdict.failures.append(f"run status is {status!r}, not 'completed'{hint}")
    if verdict.deviated:
        verdict.failures.append("the steady state deviated")
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    _check_hypothesis(verdict, journal, bool(hypothesis.get("probes")))
    _check_method(verdict, journal, experiment)
    _check_rollbacks(verdict, journal, experiment)
    verdict.measurements = _measurements(list(journal.get("run") or []))
    verdict.passed = not verdict.failures
    return verdict
