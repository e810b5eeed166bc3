"""The gameday's load, through the load package (chaoslab.load): a baseline run judged by its scenario's
thresholds, then one background run that lasts through every experiment (stopped when they are done, and only
then does Locust write its reports). One background run rather than one per experiment: the users sign up once,
the hypothesis windows always hold traffic, and one Locust report covers every fault of the gameday."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from chaoslab.errors import LoadError
from chaoslab.gameday.plan import LoadSpec
from chaoslab.load.background import BackgroundLoad
from loadtests import scenarios


@dataclass
class LoadPhase:
    name: str
    scenario: str
    start: float
    run_dir: str
    end: float | None = None
    summary: dict[str, Any] | None = None
    error: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.summary and self.summary.get("passed")) and not self.error

    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in (self.summary or {}).get("checks") or [] if not c.get("ok")]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


def baseline(spec: LoadSpec, state_dir: Path, run_dir: Path, console: Console) -> LoadPhase:
    """The scenario for `baseline_s`, judged by its thresholds (with the plan's overrides)."""
    from chaoslab.load import runner
    from chaoslab.load.progress import LiveView
    from chaoslab.load.target import resolve

    phase = LoadPhase("baseline", spec.scenario, time.time(), str(run_dir))
    try:
        target = resolve(state_dir, None)
        request = runner.LoadRequest(scenario=spec.scenario, target=target, run_dir=run_dir, users=spec.users,
                                     duration_s=spec.baseline_s, rate=spec.rate, thresholds=list(spec.thresholds),
                                     mix=scenarios.MIX_CUSTOM if spec.locustfile else None,
                                     locustfile=spec.locustfile_path, user_classes=tuple(spec.user_classes))
        with LiveView(console, f"baseline ({spec.scenario})", spec.baseline_s,
                      f"http://127.0.0.1:{target.metrics_port}/metrics") as view:
            outcome = runner.run(request, spec.baseline_s, on_tick=view.tick)
        if outcome.interrupted:
            raise KeyboardInterrupt
        phase.summary = outcome.summary
    except LoadError as exc:
        phase.error = exc.message
    phase.end = time.time()
    return phase


class Background:
    """The plan's scenario in the background (chaoslab.load.background), from start() until stop(), as one
    load phase of the report."""

    def __init__(self, spec: LoadSpec, state_dir: Path, run_dir: Path) -> None:
        self.load = BackgroundLoad(spec.scenario, state_dir, run_dir.parent, rate=spec.rate, users=spec.users,
                                   reports=run_dir, locustfile=spec.locustfile_path,
                                   user_classes=tuple(spec.user_classes))
        self.phase = LoadPhase("under the experiments", spec.scenario, time.time(), str(run_dir))

    def start(self) -> None:
        """LoadError when it cannot start."""
        self.load.start()
        self.phase.start = time.time()

    def stop(self) -> LoadPhase:
        if self.phase.end is None:
            self.load.stop()
            self.phase.end = time.time()
            self.phase.summary = self.load.locust_summary()
            if self.phase.summary is None:
                self.phase.error = "Locust wrote no summary"
        return self.phase
