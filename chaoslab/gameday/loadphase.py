"""The gameday's load, through the load package (`chaoslab load`): a baseline run judged by its scenario's
thresholds, then one background run that lasts through every experiment (stopped when they are done, and only
then does Locust write its reports). One background run rather than one per experiment: the users sign up once,
the hypothesis windows always hold traffic, and one Locust report covers every fault of the gameday."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from chaoslab.chaos.load import LoadProcess
from chaoslab.gameday.plan import LoadSpec
from chaoslab.lab.ports import PortPlan

BACKGROUND_DURATION = "6h"  # longer than any gameday: it is stopped when the experiments are done
START_TIMEOUT_S = 60.0


class LoadFailed(Exception):
    pass


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


def _options(spec: LoadSpec) -> list[str]:
    out = []
    if spec.rate is not None:
        out += ["--rate", f"{spec.rate:g}"]
    if spec.users is not None:
        out += ["--users", str(spec.users)]
    return out


def baseline(spec: LoadSpec, state_dir: Path, run_dir: Path, console: Console) -> LoadPhase:
    """The scenario for `baseline_s`, judged by its thresholds (with the plan's overrides)."""
    from chaoslab.errors import LoadError
    from chaoslab.load import runner
    from chaoslab.load.progress import LiveView
    from chaoslab.load.target import resolve

    phase = LoadPhase("baseline", spec.scenario, time.time(), str(run_dir))
    try:
        target = resolve(state_dir, None)
        request = runner.LoadRequest(scenario=spec.scenario, target=target, run_dir=run_dir, users=spec.users,
                                     duration_s=spec.baseline_s, rate=spec.rate, thresholds=list(spec.thresholds))
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
    """`chaoslab load SCENARIO` in its own process group, from start() until stop()."""

    def __init__(self, spec: LoadSpec, state_dir: Path, run_dir: Path, base_port: int) -> None:
        self.spec = spec
        self.state_dir = state_dir
        self.run_dir = run_dir
        self.metrics_url = f"http://127.0.0.1:{PortPlan(base_port).locust}/metrics"
        self.process: LoadProcess | None = None
        self.phase = LoadPhase("under the experiments", spec.scenario, time.time(), str(run_dir))

    def start(self) -> None:
        command = [sys.executable, "-m", "chaoslab.cli", "load", self.spec.scenario, "--state-dir",
                   str(self.state_dir), "--duration", BACKGROUND_DURATION, "--run-dir", str(self.run_dir),
                   *_options(self.spec)]
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.run_dir.parent / "experiments-load.out", "ab") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        self.process = LoadProcess(self.spec.scenario, "chaoslab load", proc, self.run_dir)
        self.phase.start = time.time()
        self._wait_serving(proc)

    def _wait_serving(self, proc: subprocess.Popen[bytes]) -> None:
        """Locust's exporter answers once its users are starting: from then on the load is on."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LoadFailed(f"the background load ended at once (exit code {proc.returncode}); "
                                 f"see {self.run_dir.parent / 'experiments-load.out'}")
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1.0):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise LoadFailed(f"the background load did not start within {START_TIMEOUT_S:g} s")

    def stop(self) -> LoadPhase:
        if self.process is not None and self.phase.end is None:
            self.process.stop()
            self.phase.end = time.time()
            from chaoslab.load.runner import read_summary

            self.phase.summary = read_summary(self.run_dir)
            if self.phase.summary is None:
                self.phase.error = "Locust wrote no summary"
        return self.phase
