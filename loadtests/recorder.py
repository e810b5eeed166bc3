"""Per-stage measurements of a shaped run: throughput and latency percentiles of each stage's steady part.

A stage's first part is spent starting its users (each signs up and logs in) and filling the queues, so it is
left out: measuring starts `settle_fraction` into the stage and ends with it. For a step scenario that gives one
point of the throughput/latency curve per step, which is what scale-test reads to find saturation.
In distributed mode the master's statistics arrive from the workers every few seconds, so the windows are
approximate by that much; scale-test runs a single Locust process for that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadtests.shapes import Stage, stage_index, stage_start
from loadtests.summary import Snapshot, window

SETTLE_FRACTION = 0.35


class StageRecorder:
    def __init__(self, plan: list[Stage], take: Callable[[], Snapshot], users: Callable[[], int],
                 settle_fraction: float = SETTLE_FRACTION) -> None:
        self.plan = plan
        self.take = take
        self.users = users
        self.settle_fraction = settle_fraction
        self.steps: list[dict[str, Any]] = []
        self._current: int | None = None
        self._start: Snapshot | None = None

    def _settled_at(self, index: int) -> float:
        begin = stage_start(self.plan, index)
        return begin + (self.plan[index].until_s - begin) * self.settle_fraction

    def observe(self, run_time_s: float) -> None:
        """Called about once a second with the run time (the shape's tick)."""
        index = stage_index(self.plan, run_time_s)
        if index != self._current:
            self._close()
            self._current = index
        if index is not None and self._start is None and run_time_s >= self._settled_at(index):
            self._start = self.take()

    def finish(self) -> None:
        """The run ended (the shape said so, or the run time ran out): close the open stage."""
        self._close()
        self._current = None

    def _close(self) -> None:
        if self._current is None or self._start is None:
            self._start = None
            return
        stage = self.plan[self._current]
        measured = window(self._start, self.take())
        self.steps.append({
            "index": self._current,
            "label": stage.label,
            "users": stage.users,
            "users_running": self.users(),
            "start_s": round(stage_start(self.plan, self._current), 3),
            "end_s": round(stage.until_s, 3),
            **measured,
        })
        self._start = None
