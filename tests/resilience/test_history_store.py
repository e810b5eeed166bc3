"""The run history (quick): runs with their verdicts and figures round-trip through STATE/history.sqlite, filters
and the latest N, a history written by a newer chaoslab or a broken file is refused with a message; `chaoslab
history` shows runs, the trend and the score chart, --json, and refuses bad options with exit 2."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from chaoslab.errors import LabError
from chaoslab.history.chart import sparkline, trend_figure
from chaoslab.history.figures import RUN, Value, run_level
from chaoslab.history.store import FILE_NAME, History, RunRecord
from support.lab import run_chaoslab

pytestmark = pytest.mark.quick


def record(name: str, started: float, score: float, p99: float, **extra: object) -> RunRecord:
    values = [Value("kill", "client_p99_s", p99), Value("kill", "time_to_recover_s", 2.0 + started % 3),
              Value("broker", "time_to_recover_s", 9.0), Value("kill", "error_budget_spent", 0.01),
              Value("broker", "error_budget_spent", 0.03)]
    return RunRecord("gameday", name, started, "passed" if score == 100 else "failed", started + 60, score,
                     "abc1234def", False, 7, verdicts=[{"suite": "kill", "name": "data audit", "passed": True}],
                     figures=values + run_level(values, score), **extra)  # type: ignore[arg-type]


def test_runs_round_trip_with_their_figures(tmp_path: Path) -> None:
    history = History.of(tmp_path)
    for i in range(5):
        history.add(record("quick" if i != 2 else "full", 1000.0 + i, 80.0 + i, 0.3 + i / 10, set_id="s1"))
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600
    runs = history.runs(name="quick")
    assert [r.started for r in runs] == [1000.0, 1001.0, 1003.0, 1004.0]  # oldest first
    latest = history.runs(name="quick", last=2, with_verdicts=True)
    assert [r.score for r in latest] == [83.0, 84.0]
    assert latest[0].verdicts[0]["name"] == "data audit" and latest[0].verdicts[0]["status"] == "passed"
    # run level: the worst recovery (9 s, broker) and the budget summed over the experiments
    assert latest[0].figure("time_to_recover_s") == 9.0
    assert latest[0].figure("error_budget_spent") == pytest.approx(0.04)
    assert latest[0].figure("client_p99_s", suite="kill") == pytest.approx(0.6)
    assert history.runs(commit="ABC12") and not history.runs(commit="fff")
    assert history.set_ids() == ["s1"]


def test_a_missing_newer_or_broken_history_is_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no run history"):
        History.of(tmp_path).runs()
    history = History.of(tmp_path)
    history.add(record("quick", 1.0, 100.0, 0.2))
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LabError, match="newer chaoslab"):
        history.runs()
    for suffix in ("-wal", "-shm"):  # WAL mode: the latest pages may live there; a broken file has none
        (tmp_path / (FILE_NAME + suffix)).unlink(missing_ok=True)
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LabError, match="cannot be used"):
        history.runs()


def test_run_level_figures() -> None:
    values = [Value("a", "time_to_detect_s", 5.0), Value("b", "time_to_detect_s", 9.0, censored=True),
              Value("a", "error_budget_spent", 0.1), Value("b", "error_budget_spent", 0.2)]
    level = {v.figure: v for v in run_level(values, 77.0)}
    assert level["time_to_detect_s"] == Value(RUN, "time_to_detect_s", 9.0, True)  # the worst, censored as it is
    assert level["error_budget_spent"].value == pytest.approx(0.3) and level["score"].value == 77.0


def test_charts() -> None:
    assert sparkline([1.0, None, 3.0, 2.0]) == "▁ █▅"
    assert sparkline([]) == ""
    svg = trend_figure("client_p99_s", [(1, 0.2, False), (2, None, False), (3, 0.5, True)])
    assert 'data-points="2"' in svg and "<polyline" in svg and "this run" in svg
    assert 'data-points="0"' in trend_figure("score", [(1, None, True)])


def test_the_history_command(tmp_path: Path) -> None:
    history = History.of(tmp_path)
    for i in range(4):
        history.add(record("quick", 1000.0 + i, 100.0 - 10 * i, 0.3 + i / 10))
    done = run_chaoslab("history", "--state-dir", tmp_path, "--plan", "quick")
    assert done.returncode == 0, done.stderr
    for expected in ("runs (oldest first)", "trend of each figure", "client p99", "score per run", "▁", "█",
                     "abc1234def"):
        assert expected in done.stdout, (expected, done.stdout)
    as_json = run_chaoslab("history", "--state-dir", tmp_path, "--json", "--last", "2")
    runs = json.loads(as_json.stdout)
    assert [r["score"] for r in runs] == [80.0, 70.0] and runs[0]["verdicts"] and runs[0]["figures"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--kind", "gamedays"], 2, "unknown --kind 'gamedays'"),
    (["--last", "0"], 2, "--last must be at least 1"),
    ([], 1, "no run history"),
])
def test_the_history_command_refuses_bad_input(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = run_chaoslab("history", "--state-dir", tmp_path / "empty", *args)
    assert done.returncode == code and message in done.stderr and "Traceback" not in done.stderr


def test_the_reports_resilience_section_charts_every_trended_figure() -> None:
    """The gameday report's history charts: one SVG per trended figure over the plan's runs, the current run marked,
    a run without a figure left out of that figure's line."""
    from chaoslab.gameday.resilience import section_html
    from chaoslab.history.figures import TRENDED

    history = [{"id": i, "current": i == 3,
                "figures": {"score": 90.0 - i, "client_p99_s": 0.2 + i / 10,
                            "time_to_recover_s": None if i == 2 else 5}}
               for i in range(1, 4)]
    data = {"score": {"value": 87.0, "note": "", "categories": []}, "figures": [], "history": history,
            "commit": {"sha": "abc1234def", "dirty": False}, "seed": 42, "set": {}, "history_id": 3}
    page = section_html(data)
    assert 'class="history-charts" data-runs="3"' in page
    assert page.count('<figure class="trend"') == len(TRENDED)
    assert 'data-figure="score" data-points="3"' in page and 'data-figure="time_to_recover_s" data-points="2"' in page
    assert 'data-figure="time_to_detect_s" data-points="0"' in page and page.count("<polyline") >= 3
    assert "this run" in page and section_html(None) == ""
