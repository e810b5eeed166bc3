"""Load that runs while something else happens (a chaos experiment, a gameday's experiments): Locust for a
scenario, or the built-in order stream (orderstream.py), each in its own process group, from start() until
stop(); then its summary.

Locust is started the way `chaoslab load` starts it (chaoslab.load.runner.Locust), aimed at the lab's gateway with
its exporter on the lab's Locust port, so the lab's Prometheus scrapes the client's view as job=locust.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from chaoslab.errors import RUN_FAILED, LoadError
from chaoslab.load.runner import LoadRequest, Locust, read_summary
from chaoslab.load.target import resolve

BUILTIN = ("orders", "builtin")
LONGER_THAN_ANY_RUN_S = 6 * 3600.0  # the scenario runs until stop() ends it
START_TIMEOUT_S = 60.0
STREAM_STOP_GRACE_S = 20.0  # the order stream finishes the requests in flight, then writes its summary


class BackgroundLoad:
    """`scenario` against the lab in `state_dir`: "orders" (or "builtin") is the order stream at `rate` orders
    a second; any other name is a Locust scenario (`rate`, `users` and `thresholds` as for `chaoslab load`)."""

    def __init__(self, scenario: str, state_dir: Path, run_dir: Path, *, rate: float | None = None,
                 users: int | None = None, thresholds: list[str] | None = None,
                 reports: Path | None = None, locustfile: Path | None = None,
                 user_classes: tuple[str, ...] = ()) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.run_dir = run_dir
        self.rate = rate
        self.users = users
        self.thresholds = list(thresholds or [])
        self.locustfile = locustfile  # a user's own (chaoslab.load.runner.LoadRequest.locustfile)
        self.user_classes = user_classes
        self.builtin = scenario in BUILTIN
        self._reports = reports
        self.engine = "builtin" if self.builtin else "locust"
        self._stream: subprocess.Popen[bytes] | None = None
        self._locust: Locust | None = None
        self.metrics_url: str | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    @property
    def output(self) -> Path:
        """The order stream's JSON lines, or Locust's run dir (CSV, HTML report, summary.json)."""
        if self.builtin:
            return self.run_dir / "load.jsonl"
        return self._reports or self.run_dir / "load"

    def start(self) -> None:
        """Start the load; for Locust, return once its exporter answers (its users are starting). LoadError when
        it cannot start."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        if self.builtin:
            command = [sys.executable, "-m", "chaoslab.load.orderstream", "--state-dir", str(self.state_dir),
                       "--rate", str(self.rate or 8.0), "--out", str(self.output)]
            with open(self.run_dir / "load.out", "ab") as log:
                self._stream = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True,
                                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
            return
        target = resolve(self.state_dir, None)
        self.metrics_url = f"http://127.0.0.1:{target.metrics_port}/metrics"
        self._locust = Locust(LoadRequest(scenario=self.scenario, target=target, run_dir=self.output,
                                          users=self.users, duration_s=LONGER_THAN_ANY_RUN_S, rate=self.rate,
                                          thresholds=self.thresholds, locustfile=self.locustfile,
                                          user_classes=self.user_classes))
        master = self._locust.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if master.poll() is not None:
                self._locust.close()
                raise LoadError(f"the background load ended at once (exit code {master.returncode}); "
                                f"see {self.output / 'locust.log'}", exit_code=RUN_FAILED)
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1.0):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise LoadError(f"the background load did not start within {START_TIMEOUT_S:g} s", exit_code=RUN_FAILED)

    def stop(self) -> None:
        """Stop it (Locust writes its reports, the stream its summary line); idempotent."""
        if self._stream is not None and self._stream.poll() is None:
            os.killpg(self._stream.pid, signal.SIGTERM)
            try:
                self._stream.wait(STREAM_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self._stream.pid, signal.SIGKILL)
                self._stream.wait(5)
        if self._locust is not None:
            self._locust.stop()
            self._locust.close()
        if self.stopped_at is None and self.started_at is not None:
            self.stopped_at = time.time()

    def locust_summary(self) -> dict[str, Any] | None:
        """Locust's own summary.json (thresholds, stages, totals); None for the order stream or when missing."""
        return None if self.builtin else read_summary(self.output)

    def summary(self) -> dict[str, Any] | None:
        """The load's own account in one shape: requests, failures, error ratio, p99."""
        if self.builtin:
            return _stream_summary(self.output)
        data = self.locust_summary()
        if data is None:
            return None
        total = data.get("total")  # loadtests/summary.py: the Aggregated row
        if not isinstance(total, dict):
            return {"engine": self.engine, "report": str(self.output)}
        requests, failures = int(total.get("requests", 0)), int(total.get("failures", 0))
        return {"engine": self.engine, "requests": requests, "failures": failures,
                "error_ratio": round(failures / requests, 4) if requests else 0.0,
                "p99_s": round(float(total.get("p99_ms", 0.0)) / 1000, 4), "report": str(self.output)}


def _stream_summary(output: Path) -> dict[str, Any] | None:
    try:
        lines = output.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "summary" in record:
            return {"engine": "builtin", **record["summary"]}
    return None
