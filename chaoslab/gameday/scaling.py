"""The plan's scaling check: the load package's `chaoslab scale-test` (its own process: it drives Locust and
scales the lab), read back from its scaling.json. Run after the experiments, with no other load on the lab."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from chaoslab.gameday.plan import ScalingSpec
from chaoslab.gameday.verdicts import Verdict


def command(spec: ScalingSpec, state_dir: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "chaoslab.cli", "scale-test", spec.service,
            "--replicas", ",".join(str(n) for n in spec.replicas), "--duration", spec.duration,
            "--min-efficiency", f"{spec.min_efficiency:g}", "--run-dir", str(run_dir), "--state-dir", str(state_dir)]


def run(spec: ScalingSpec, state_dir: Path, run_dir: Path, console: Console) -> tuple[dict[str, Any], Verdict]:
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(run_dir / "scale-test.out", "wb") as sink:
        proc = subprocess.Popen(command(spec, state_dir, run_dir), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:  # the scale test's own progress, as it goes
            sink.write(line)
            console.print("    " + line.decode(errors="replace").rstrip(), highlight=False, markup=False)
        code = proc.wait()
    record: dict[str, Any] = {"service": spec.service, "start": started, "end": time.time(), "exit_code": code,
                              "run_dir": str(run_dir), "seconds": round(time.time() - started, 1)}
    try:
        result = json.loads((run_dir / "scaling.json").read_text())
    except (OSError, ValueError):
        verdict = Verdict("scaling", f"{spec.service} scales with its replicas", False, None, spec.min_efficiency,
                          "", f"scale-test wrote no result (exit code {code}); see {run_dir / 'scale-test.out'}",
                          at_least=True)
        return record, verdict
    record["result"] = result
    efficiency = float(result.get("efficiency", 0.0))
    points = ", ".join(f"{p['replicas']}: {p['throughput']:.1f}/s" for p in result.get("points", []))
    verdict = Verdict("scaling", f"{spec.service} scales with its replicas",
                      bool(result.get("passed")) and efficiency >= spec.min_efficiency, round(efficiency, 3),
                      spec.min_efficiency, "", f"efficiency at {max(spec.replicas)} replicas; throughput {points}",
                      at_least=True)
    return record, verdict
