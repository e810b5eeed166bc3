"""The gameday for real (lab): the quick plan end to end from an idle lab (the gameday starts it), run once for
the module, its three artifacts checked against each other and its charts against the run; then a plan whose
bound cannot be met, on the same lab, fails with that verdict named. The lab is stopped at the end and no
process of it may be left."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import yaml

from chaoslab.lab import control
from support.lab import assert_no_lab_process, release_base_port, reserve_base_port, run_chaoslab

from . import artifacts

pytestmark = pytest.mark.lab

QUICK_BUDGET_S = 600  # the README's main job must take under 10 minutes on this 2-core machine
RUN_TIMEOUT_S = 900


@dataclass
class Run:
    done: CompletedProcess[str]
    run_dir: Path
    seconds: float

    @property
    def output(self) -> str:
        return f"exit {self.done.returncode}\n{self.done.stdout}\n{self.done.stderr}"

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "summary.json").read_text()))


@pytest.fixture(scope="module")
def gameday_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A state dir and a base port; the first gameday starts the lab there, the end of the module stops it."""
    state_dir = tmp_path_factory.mktemp("gameday") / "state"
    base = reserve_base_port()
    try:
        yield state_dir, base
        down = run_chaoslab("down", "--state-dir", state_dir)
        assert down.returncode == 0, down.stderr
        assert_no_lab_process(state_dir)
    finally:
        release_base_port(base)


def gameday(lab: tuple[Path, int], runs_dir: Path, plan: str | Path) -> Run:
    state_dir, base = lab
    started = time.monotonic()
    done = run_chaoslab("gameday", "--plan", plan, "--state-dir", state_dir, "--base-port", str(base),
                        "--runs-dir", runs_dir, timeout=RUN_TIMEOUT_S)
    seconds = time.monotonic() - started
    found = sorted(runs_dir.glob("*-gameday-*"))
    assert found, f"no run directory in {runs_dir}:\n{done.stdout}\n{done.stderr}"
    return Run(done, found[-1], seconds)


@pytest.fixture(scope="module")
def quick_run(gameday_lab: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> Run:
    assert not control.is_running(gameday_lab[0])  # from an idle lab: the gameday must start it
    return gameday(gameday_lab, tmp_path_factory.mktemp("quick-runs"), "quick")


@pytest.mark.slow
def test_the_quick_plan_passes_end_to_end_from_an_idle_lab(quick_run: Run) -> None:
    assert quick_run.done.returncode == 0, quick_run.output
    print(f"quick plan from an idle lab: {quick_run.seconds:.0f} s")  # shown with -s; the report keeps it too
    assert quick_run.seconds < QUICK_BUDGET_S, quick_run.output
    summary = quick_run.summary
    assert summary["passed"] and summary["lab"]["started_by_gameday"]
    assert "[4/4] experiment" in quick_run.done.stdout and "PASSED" in quick_run.done.stdout  # progress shown
    run_dir = quick_run.run_dir
    for name in ("baseline", "experiments"):  # Locust's reports, baseline and under the experiments
        for file in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "summary.json"):
            assert (run_dir / "load" / name / file).is_file(), (name, file)
    assert summary["load"]["under_experiments"]["summary"]["total"]["requests"] > 0
    for experiment in summary["experiments"]:
        assert (Path(experiment["run_dir"]) / "journal.json").is_file()
        assert experiment["fault"] is not None and experiment["recovery"]["recovered"]
        assert experiment["client"]["requests"] > 0 and experiment["audit"]["ok"]
        for alert in experiment["alerts"]:
            assert alert["notified"] and alert["resolved"], alert
            assert alert["time_to_detect_s"] <= alert["bounds"]["max_time_to_detect_s"]
    faults = [e for e in summary["timeline"] if e["kind"] == "fault"]
    assert len(faults) >= 2 * len(summary["experiments"])
    assert any(e["kind"] == "alert" for e in summary["timeline"])


@pytest.mark.slow
def test_its_summary_junit_and_report_agree(quick_run: Run) -> None:
    from_summary = artifacts.summary_verdicts(quick_run.run_dir)
    assert len(from_summary) >= 30  # every experiment's before/during/after/run, alerts, recovery, client, audit
    assert artifacts.junit_verdicts(quick_run.run_dir) == from_summary
    assert artifacts.report_verdicts(quick_run.run_dir) == from_summary
    assert artifacts.read_report(quick_run.run_dir).overall is quick_run.summary["passed"]


@pytest.mark.slow
def test_the_report_charts_hold_data_from_the_run(quick_run: Run) -> None:
    summary = quick_run.summary
    report = artifacts.read_report(quick_run.run_dir)
    assert len(report.charts) == len(summary["charts"]) >= 6
    for chart, recorded in zip(report.charts, summary["charts"], strict=True):
        assert chart["points"] > 0 and chart["polylines"] > 0, f"an empty chart: {chart['title']}"
        assert chart["points"] == chart["drawn"] == recorded["points"]
        # the points come from this run: within its start and end (one step of slack each side)
        assert summary["started"] - 5 <= chart["first"] <= chart["last"] <= summary["finished"] + 5, chart
    assert report.timeline_bars >= 1 + 2 * len(summary["experiments"])
    html = (quick_run.run_dir / "report.html").read_text()
    assert html.count('class="fault"') == len(summary["charts"]) * len(summary["experiments"])
    assert 'class="box request"' in html and '<pre class="waterfall">' in html  # traced requests with waterfalls


def test_an_impossible_bound_fails_with_that_verdict_named(gameday_lab: tuple[Path, int], tmp_path: Path) -> None:
    plan = {
        "name": "impossible",
        "load": {"scenario": "rate", "rate": 5, "baseline_s": 10, "warmup_s": 3},
        "experiments": [{"experiment": "poison-message", "fault_end": "purge-dead-letter-queue",
                         "alerts": [{"name": "DeadLetterQueueNotEmpty", "max_time_to_detect_s": 0.001}],
                         "max_time_to_recover_s": 30, "settle_s": 30}],
    }
    path = tmp_path / "impossible.yaml"
    path.write_text(yaml.safe_dump(plan))
    run = gameday(gameday_lab, tmp_path / "runs", path)
    named = "poison-message: alert DeadLetterQueueNotEmpty time-to-detect"
    assert run.done.returncode == 1, run.output
    assert named in run.done.stdout, run.output
    verdicts = artifacts.junit_verdicts(run.run_dir)
    assert verdicts[named] is False
    # the alert did come: only the bound failed
    assert verdicts["poison-message: alert DeadLetterQueueNotEmpty notified"] is True
    assert verdicts["poison-message: during the fault"] is True
    [experiment] = run.summary["experiments"]
    assert experiment["alerts"][0]["time_to_detect_s"] > 0.001
