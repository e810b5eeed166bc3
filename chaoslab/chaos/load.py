"""Background load during an experiment: the load engineer's `chaoslab load SCENARIO` when it exists, else the
built-in order stream (orderstream.py). Either runs in its own process group, which only we end."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BUILTIN = ("orders", "builtin")
STOP_GRACE_S = 45.0  # `chaoslab load` stops Locust and writes its reports after SIGTERM
BACKGROUND_DURATION = "6h"  # a Locust scenario runs until the experiment ends and we stop it


@dataclass
class LoadProcess:
    scenario: str
    engine: str  # "builtin" or "chaoslab load"
    proc: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> int | None:
        """SIGTERM (the stream writes its summary), SIGKILL when it does not end in time."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def summary(load: LoadProcess) -> dict[str, object] | None:
    """The load's own account: the order stream's summary line, or the totals of `chaoslab load`'s summary.json."""
    if load.engine == "builtin":
        return _stream_summary(load.output)
    try:
        data = json.loads((load.output / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    total = data.get("total")  # loadtests/summary.py: the Aggregated row
    if not isinstance(total, dict):
        return {"engine": load.engine, "report": str(load.output)}
    requests, failures = int(total.get("requests", 0)), int(total.get("failures", 0))
    return {"engine": load.engine, "requests": requests, "failures": failures,
            "error_ratio": round(failures / requests, 4) if requests else 0.0,
            "p99_s": round(float(total.get("p99_ms", 0.0)) / 1000, 4), "report": str(load.output)}


def _stream_summary(output: Path) -> dict[str, object] | None:
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


def load_engine_available() -> bool:
    """The load engineer's package and its CLI module (chaoslab/load/) are installed."""
    return importlib.util.find_spec("chaoslab.load") is not None


def start(scenario: str, state_dir: Path, run_dir: Path, rate: float) -> LoadProcess:
    env = dict(os.environ, CHAOSLAB_STATE_DIR=str(state_dir), PYTHONUNBUFFERED="1")
    if scenario in BUILTIN or not load_engine_available():
        output = run_dir / "load.jsonl"
        command = [sys.executable, "-m", "chaoslab.chaos.orderstream", "--state-dir", str(state_dir),
                   "--rate", str(rate), "--out", str(output)]
        engine = "builtin"
    else:
        output = run_dir / "load"  # Locust's reports and summary.json
        command = [sys.executable, "-m", "chaoslab.cli", "load", scenario, "--state-dir", str(state_dir),
                   "--duration", BACKGROUND_DURATION, "--run-dir", str(output)]
        engine = "chaoslab load"
    log = open(run_dir / "load.out", "ab")  # noqa: SIM115 - the child holds it; closed with the process
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    log.close()
    return LoadProcess(scenario, engine, proc, output)
