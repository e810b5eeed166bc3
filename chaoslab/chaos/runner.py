"""`chaoslab chaos run`: one experiment, run by `chaos run` against a lab, judged from its journal.

The run directory (runs/<timestamp>-chaos-<experiment>/) keeps everything: vars.json (the lab's configuration
handed to the experiment), journal.json, the Chaos Toolkit log, the load's output and verdict.json.
Rollbacks always run (`--rollback-strategy always`); afterwards the runner itself looks for anything left
behind (active faults, paused or stopped programs), undoes it and fails the run if there was any.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab import documents
from chaoslab.chaos import seeds
from chaoslab.chaos.lab import STATE_KEY
from chaoslab.chaos.verdict import Verdict, compute
from chaoslab.errors import INTERRUPTED, LabError, UsageError
from chaoslab.lab import faults, registry
from chaoslab.lab.lease import Holder, lease
from chaoslab.lab.paths import DEFAULT_RUNS_DIR, new_run_dir
from chaoslab.load.background import BackgroundLoad

# chaosaddons logs this (and nothing in the journal) when a safeguard stops a run
SAFEGUARD_LINE = re.compile(r"Safeguard '([^']+)' triggered the end of the experiment")


@dataclass
class RunOptions:
    experiment: Path
    state_dir: Path
    runs_dir: Path = DEFAULT_RUNS_DIR
    load: str | None = None
    load_rate: float = 8.0
    warmup_s: float = 10.0  # traffic before the hypothesis, so its windows hold requests
    variables: dict[str, Any] = field(default_factory=dict)
    echo: bool = False  # show chaos run's output live
    wait_s: float = 0.0  # for the lab's lease, when another command holds it
    on_wait: Callable[[Holder | None], None] | None = None  # told once when waiting for the lease
    seed: int | None = None  # what the experiment draws at random is drawn from it (chaoslab.chaos.seeds)


@dataclass
class RunResult:
    run_dir: Path
    chaos_exit_code: int
    verdict: Verdict
    load_summary: dict[str, Any] | None = None
    leftovers: dict[str, list[str]] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C: chaos run was stopped, its rollbacks ran (the verdict says which)


def chaos_bin() -> str:
    """The `chaos` next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name("chaos")
    return str(candidate) if candidate.exists() else "chaos"


def lab_configuration(state_dir: Path, variables: dict[str, Any]) -> dict[str, Any]:
    """What every experiment gets: where the lab is (its state dir, and Prometheus for chaosprometheus)."""
    reg = registry.find(state_dir)
    return {STATE_KEY: str(state_dir), "prometheus_base_url": reg["prometheus_url"], **variables}


def chaos_command(experiment: Path, run_dir: Path) -> list[str]:
    return [
        chaos_bin(), "--no-version-check", "--log-file", str(run_dir / "chaostoolkit.log"),
        "--settings", str(run_dir / "settings.yaml"),
        "run", "--rollback-strategy", "always", "--journal-path", str(run_dir / "journal.json"),
        "--var-file", str(run_dir / "vars.json"), str(experiment),
    ]


def _run_chaos(command: list[str], run_dir: Path, state_dir: Path, echo: bool, seed: int | None = None) -> int:
    env = dict(os.environ, CHAOSLAB_STATE_DIR=str(state_dir))
    env.pop(seeds.ENV, None)
    if seed is not None:
        env[seeds.ENV] = str(seed)
    with open(run_dir / "chaos.out", "wb") as sink:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, cwd=run_dir)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sink.write(line)
                if echo:
                    sys.stdout.write(line.decode(errors="replace"))
                    sys.stdout.flush()
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C: let chaos run interrupt itself and play the rollbacks (strategy "always")
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise


ISOLATED_TAG = "isolated"


def check_network(experiment: Path, state_dir: Path) -> None:
    """An experiment tagged `isolated` acts below the application: refuse it, clearly, on a loopback lab."""
    tags = documents.load_mapping(experiment, "an experiment").get("tags", [])
    mode = registry.find(state_dir).get("network", {}).get("mode", "loopback")
    if ISOLATED_TAG in tags and mode != "isolated":
        raise LabError(f"{experiment.stem} injects faults below the application and needs an isolated lab; the lab "
                       f"in {state_dir} runs --network {mode}",
                       hint=f"chaoslab down --state-dir {state_dir}, then as root: chaoslab up --network isolated "
                            f"--state-dir {state_dir} (chaoslab up --help says what it needs)", exit_code=2)


def check_experiment(experiment: Path, variables: dict[str, Any]) -> list[str]:
    """Problems that would stop `chaos run` before anything runs, found first so that they are said plainly:
    DocumentError when the file does not parse, UsageError for a function the extension does not export or a
    --var the experiment does not have. Returns the lesser problems (chaoslab chaos validate's) as warnings."""
    from chaoslab.chaos.experiments import lint, unknown_variables

    data = documents.load_mapping(experiment, "an experiment")
    problems = lint(experiment)
    fatal = [p for p in problems if p.endswith("is not exported")]
    fatal += [f"--var {key}: {problem}" for key, problem in unknown_variables(data, variables).items()]
    if fatal:
        raise UsageError(f"{experiment.name} cannot run:\n  " + "\n  ".join(fatal),
                         hint="chaoslab chaos validate <experiment> checks an experiment; docs/extension.md lists "
                              "every action and probe with its arguments")
    return problems


def run(opts: RunOptions) -> RunResult:
    """Run the experiment under the lab's lease (LabBusy when another command holds it past opts.wait_s)."""
    state_dir = opts.state_dir.resolve()
    check_experiment(opts.experiment, opts.variables)
    config = lab_configuration(state_dir, opts.variables)  # fails early when no lab runs there
    check_network(opts.experiment, state_dir)
    with lease(state_dir, wait_s=opts.wait_s, on_wait=opts.on_wait):
        return _run_leased(opts, state_dir, config)


def _run_leased(opts: RunOptions, state_dir: Path, config: dict[str, Any]) -> RunResult:
    run_dir = new_run_dir(opts.runs_dir, "chaos", opts.experiment.stem)
    (run_dir / "vars.json").write_text(json.dumps({"configuration": config}, indent=2) + "\n")
    (run_dir / "settings.yaml").write_text("{}\n")  # not the user's ~/.chaostoolkit settings

    load = BackgroundLoad(opts.load, state_dir, run_dir, rate=opts.load_rate) if opts.load else None
    code, interrupted = INTERRUPTED, False
    try:
        if load is not None:
            load.start()
            if opts.warmup_s > 0:
                time.sleep(opts.warmup_s)
        code = _run_chaos(chaos_command(opts.experiment, run_dir), run_dir, state_dir, opts.echo, opts.seed)
    except KeyboardInterrupt:
        interrupted = True  # chaos run got the SIGINT and played its rollbacks; judge what it left
    finally:
        if load is not None:
            load.stop()
        reg = registry.find(state_dir)
        sv = faults.supervisor_of(state_dir)
        left = faults.leftovers(reg, sv)
        if left:
            faults.restore(reg, sv)

    verdict = judge(run_dir / "journal.json", run_dir / "chaos.out")
    if interrupted:
        verdict.failures.insert(0, "interrupted (Ctrl-C): chaos run stopped and played its rollbacks")
        verdict.passed = False
    for name in safeguards_triggered(run_dir / "chaostoolkit.log"):
        verdict.failures.append(f"safeguard {name!r} aborted the run (the error budget burned too fast)")
        verdict.passed = False
    if left:
        verdict.failures.append("left behind after the rollbacks (now undone): "
                                + "; ".join(f"{k}: {', '.join(v)}" for k, v in left.items()))
        verdict.passed = False
    summary = load.summary() if load is not None else None
    result = RunResult(run_dir, code, verdict, summary, left, interrupted)
    (run_dir / "verdict.json").write_text(json.dumps(
        {"chaos_exit_code": code, "load": summary, "leftovers": left, "interrupted": interrupted, "seed": opts.seed,
         **verdict.to_json()}, indent=2) + "\n")
    return result


def safeguards_triggered(log: Path) -> list[str]:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return sorted(set(SAFEGUARD_LINE.findall(text)))


# chaostoolkit's console lines: "[2026-12-04 21:14:12 ERROR] message", possibly in colour
LOG_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)?\[[0-9-]+ [0-9:]+ (?P<level>[A-Z]+)\] (?:\[[^\]]*\] )?(?P<text>.*?)"
                      r"(?:\x1b\[[0-9;]*m)?$")


def chaos_errors_of(text: str, limit: int = 5) -> list[str]:
    """The ERROR and CRITICAL lines in chaos's output."""
    found = [m.group("text") for m in map(LOG_LINE.match, text.splitlines())
             if m and m.group("level") in ("ERROR", "CRITICAL")]
    return list(dict.fromkeys(found))[-limit:]


def chaos_errors(output: Path, limit: int = 5) -> list[str]:
    """The ERROR and CRITICAL lines chaos run printed to `output` (why it stopped when it wrote no journal)."""
    try:
        return chaos_errors_of(output.read_text(errors="replace"), limit)
    except OSError:
        return []


def judge(journal_path: Path, output: Path | None = None) -> Verdict:
    """The verdict of a journal; without one, a failed verdict saying why chaos run wrote none (from its output,
    chaos.out of the run directory, when given)."""
    try:
        journal = json.loads(journal_path.read_text())
    except (OSError, ValueError) as exc:
        verdict = Verdict(title="?", status="missing", deviated=False, passed=False)
        causes = chaos_errors(output) if output is not None else []
        if causes:
            verdict.failures.extend(f"chaos run stopped before the experiment ran: {c}" for c in causes)
        else:
            verdict.failures.append(f"no journal to judge ({journal_path}: {exc.__class__.__name__}); chaos run's "
                                    f"output is in {output or 'its run directory'}")
        return verdict
    return compute(journal)
