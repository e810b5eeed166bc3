"""Verdicts computed from real journals of `chaos run` against a native lab (tests/chaos/journals/, produced by
`chaoslab chaos run`), and from small edits of them for the cases a lab cannot produce on demand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chaoslab.chaos.runner import judge, safeguards_triggered
from chaoslab.chaos.verdict import compute

pytestmark = pytest.mark.quick
JOURNALS = Path(__file__).parent / "journals"


def journal(name: str) -> dict[str, Any]:
    return dict(json.loads((JOURNALS / f"{name}.json").read_text()))


def test_a_passing_run_passes_with_every_phase_and_its_measurement() -> None:
    verdict = compute(journal("passed-kill-payments-replica"))
    assert verdict.passed, verdict.failures
    assert verdict.status == "completed" and not verdict.deviated
    assert {s.phase for s in verdict.steps} == {"before", "after", "method", "rollback"}
    assert all(s.ok for s in verdict.steps)
    [recovery] = verdict.measurements
    assert recovery["measure"] == "time_to_recover" and recovery["service"] == "payments"
    assert 0 < recovery["seconds"] < 15
    json.dumps(verdict.to_json())  # verdict.json is written from it


def test_a_hypothesis_missed_before_the_method_fails_although_chaos_run_exits_0() -> None:
    data = journal("failed-hypothesis-before")
    # what makes `chaos run` exit 0: the run counts as completed and not deviated
    assert data["status"] == "completed" and data["deviated"] is False
    verdict = compute(data)
    assert not verdict.passed
    assert any("not met before the method" in f for f in verdict.failures)
    assert [s.status for s in verdict.steps if s.phase == "before"] == ["missed"]
    assert not [s for s in verdict.steps if s.phase == "method"]  # skipped, and that is not counted as a pass


def test_a_method_action_that_raised_fails_although_chaos_run_exits_0() -> None:
    data = journal("failed-action-raised")
    assert data["status"] == "completed" and data["deviated"] is False
    verdict = compute(data)
    assert not verdict.passed
    assert verdict.failures == ["method action 'kill-a-replica-that-does-not-exist' failed"]
    failed = [s for s in verdict.steps if not s.ok]
    assert len(failed) == 1 and "no replica 'payments-99'" in failed[0].detail
    assert "ActivityFailed" not in failed[0].detail  # the message, not chaoslib's wrapping
    assert [s.status for s in verdict.steps if s.phase == "rollback"] == ["succeeded"]


def test_a_run_stopped_by_the_safeguard_fails_and_its_rollbacks_still_ran() -> None:
    verdict = compute(journal("interrupted-safeguard"))
    assert not verdict.passed and verdict.status == "interrupted"
    assert any("interrupted" in f for f in verdict.failures)
    # the hold was cut short by the safeguard's signal: journaled without a status
    assert "method action 'errors-go-on' interrupted" in verdict.failures
    assert any("only 2 of 3 method activities ran" in f for f in verdict.failures)
    assert [s.name for s in verdict.steps if s.phase == "rollback" and s.ok] == ["clear-orders-faults", "restore-lab"]
    assert verdict.duration_s is not None and verdict.duration_s < 20  # the 40 s hold did not run out


def test_a_failed_rollback_fails_the_run() -> None:
    data = journal("passed-kill-payments-replica")
    data["rollbacks"][0]["status"] = "failed"
    data["rollbacks"][0]["exception"] = ["chaoslib.exceptions.ActivityFailed: supervisord does not answer\n"]
    verdict = compute(data)
    assert not verdict.passed
    assert verdict.failures == ["rollback 'restore-lab' failed"]


def test_rollbacks_that_did_not_run_fail_the_run() -> None:
    data = journal("passed-kill-payments-replica")
    data["rollbacks"] = []  # what the default rollback strategy does to a failed run
    assert any("0 of 1 rollbacks ran" in f for f in compute(data).failures)


def test_a_miss_after_the_method_or_during_it_fails_the_run() -> None:
    data = journal("passed-kill-payments-replica")
    after = copy.deepcopy(data)
    after["steady_states"]["after"]["steady_state_met"] = False
    after["steady_states"]["after"]["probes"][1]["tolerance_met"] = False
    verdict = compute(after)
    assert "steady state not met after the method" in verdict.failures
    assert [s.status for s in verdict.steps if s.phase == "after"] == ["succeeded", "missed"]

    during = copy.deepcopy(data)
    during["steady_states"]["during"] = [copy.deepcopy(data["steady_states"]["after"]) for _ in range(3)]
    during["steady_states"]["during"][1]["steady_state_met"] = False
    verdict = compute(during)
    assert verdict.failures == ["steady state missed 1 time(s) while the method ran"]

    missing = copy.deepcopy(data)
    missing["steady_states"]["after"] = None
    assert "the steady-state hypothesis did not run after the method" in compute(missing).failures


def test_a_deviated_or_aborted_run_fails() -> None:
    data = journal("passed-kill-payments-replica")
    data["deviated"] = True
    assert "the steady state deviated" in compute(data).failures
    data = journal("passed-kill-payments-replica")
    data["status"] = "aborted"
    assert any("'aborted'" in f for f in compute(data).failures)


def test_no_journal_is_a_failure(tmp_path: Path) -> None:
    verdict = judge(tmp_path / "journal.json")
    assert not verdict.passed and verdict.status == "missing"
    (tmp_path / "journal.json").write_text("{not json")
    assert not judge(tmp_path / "journal.json").passed
    # why chaos run wrote none is quoted from its output, colours and duplicates left out
    output = tmp_path / "chaos.out"
    output.write_text("[2026-12-04 10:00:01 INFO] Validating the experiment's syntax\n"
                      "\x1b[31m[2026-12-04 10:00:01 ERROR] [validation:59] Experiment is not valid: "
                      "chaoslab.chaos.actions.inject_latncy is not exported\x1b[0m\n"
                      "[2026-12-04 10:00:01 ERROR] [validation:59] Experiment is not valid: "
                      "chaoslab.chaos.actions.inject_latncy is not exported\n")
    verdict = judge(tmp_path / "nowhere.json", output)
    assert verdict.failures == ["chaos run stopped before the experiment ran: Experiment is not valid: "
                                "chaoslab.chaos.actions.inject_latncy is not exported"], verdict.failures
    output.write_text("[2026-12-04 10:00:01 INFO] nothing went wrong in words\n")
    assert "chaos run's output is in " in judge(tmp_path / "nowhere.json", output).failures[0]


def test_the_safeguard_that_stopped_a_run_is_named_from_the_chaos_toolkit_log(tmp_path: Path) -> None:
    log = tmp_path / "chaostoolkit.log"
    log.write_text("[2026-11-24 07:20:44 DEBUG] [safeguards:276] Safeguard 'x' finished normally\n"
                   "[2026-11-24 07:20:44 CRITICAL] [safeguards:252] Safeguard 'error-budget-burn-under-limit' "
                   "triggered the end of the experiment\n")
    assert safeguards_triggered(log) == ["error-budget-burn-under-limit"]
    assert safeguards_triggered(tmp_path / "missing.log") == []
