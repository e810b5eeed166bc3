"""The comparison's reading of its figures (no lab): paths into each topology's result, the ratio, a gameday's
summary, and the Markdown report with one row per figure."""

from __future__ import annotations

from typing import Any

import pytest

from chaoslab.topologies.compare import FIGURES, PLAN_FIGURES, gameday_figures, markdown, side_by_side

pytestmark = pytest.mark.quick


def _result(processes: int, gameday: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"start": {"processes": processes, "pss_mb": 100.0 * processes},
                           "blast_radius": {"stop": {"journeys_failed": ["order"], "order": {"failed_share": 0.5,
                                                                                           "failing_s": 3.0}}}}
    if gameday:
        out["gameday"] = gameday
    return out


def test_each_figure_side_by_side_with_its_ratio_and_missing_ones_left_empty() -> None:
    rows = {r["figure"]: r for r in side_by_side({"microservices": _result(6), "monolith": _result(1)})}
    assert set(rows) == {path for path, _, _ in FIGURES}  # no plan: no gameday rows
    assert rows["start.processes"]["ratio"] == pytest.approx(1 / 6, abs=1e-3)
    assert rows["start.pss_mb"]["monolith"] == 100.0
    assert rows["saturation.throughput_rps"]["microservices"] is None and rows["saturation.throughput_rps"]["ratio"] \
        is None


def test_a_gamedays_summary_gives_counts_score_and_what_was_left_out() -> None:
    summary = {"passed": True, "counts": {"total": 38, "passed": 38, "failed": 0, "inconclusive": 0},
               "resilience": {"score": {"value": 100.0, "categories": []}},
               "notes": ["payments-down left out: the plan runs it on microservices only, not monolith"]}
    figures = gameday_figures(summary)
    assert figures["score"] == 100.0 and figures["counts"]["passed"] == 38 and "left out" in figures["notes"][0]
    rows = {r["figure"]: r for r in side_by_side({"microservices": _result(6, {**figures, "score": 90.0}),
                                                  "monolith": _result(1, figures)})}
    assert {path for path, _, _ in PLAN_FIGURES} <= set(rows)
    assert rows["gameday.score"]["ratio"] == pytest.approx(100 / 90, abs=1e-3)


def test_the_markdown_report_has_a_row_per_figure() -> None:
    results = {"microservices": _result(6), "monolith": _result(1)}
    text = markdown({"settings": {"replicas": 1, "machine": {"cpus": 2, "memory_gb": 24}},
                     "topologies": results, "figures": side_by_side(results)})
    assert text.count("\n| ") == len(FIGURES) + 2  # header, rule, rows
    assert "- monolith, payments stopped: journeys failed: order (50%, 3.0 s)" in text
