"""`chaoslab chaos list|validate|run` and `chaoslab faults`: Chaos Toolkit experiments against the native lab,
judged from their journals, and the faults the lab holds.

Chaos Toolkit and the runner are imported inside the commands: every other `chaoslab` command starts without
paying for them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from chaoslab.cli.console import err, errors, fail, out, waiting
from chaoslab.cli.options import RUNS_DIR, STATE_DIR, AsJson, RunsDir, StateDir, Wait
from chaoslab.errors import INTERRUPTED
from chaoslab.lab.lease import lease
from chaoslab.lab.paths import LabPaths

app = typer.Typer()
chaos_app = typer.Typer(
    name="chaos", no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
    help="Chaos Toolkit experiments against the native lab, judged from their journals.",
)

@chaos_app.command("list")
def list_experiments(as_json: AsJson = False) -> None:
    """List the native experiments (chaos/*.json, *.yaml)."""
    from chaoslab.chaos import experiments, report

    found = [experiments.describe(p) for p in experiments.all_experiments()]
    if as_json:
        _print_json([vars(item) for item in found])
        return
    out.print(report.experiments_table(found))


@chaos_app.command(epilog="Examples:\n\n  chaoslab chaos validate\n\n  chaoslab chaos validate my-experiment.yaml\n\n"
                   "Exit code: 0 when every experiment is valid, 1 when any is not, 2 when one cannot be found.")
def validate(
    experiment: Annotated[str | None, typer.Argument(help="An experiment name or path (JSON or YAML); all of "
                                                          "chaos/ when omitted.")] = None,
    state_dir: StateDir = STATE_DIR,
    as_json: AsJson = False,
) -> None:
    """Validate experiments: `chaos validate`, plus chaoslab's own checks (hypothesis, method, rollbacks,
    no hard-coded address, only exported extension functions). With a lab in --state-dir, also whether the lab
    can run it (an experiment tagged isolated needs an isolated lab)."""
    from chaoslab.chaos import experiments, runner
    from chaoslab.errors import ChaoslabError

    try:
        paths = [experiments.resolve(experiment)] if experiment else experiments.all_experiments()
    except FileNotFoundError as exc:
        raise fail(str(exc), code=2) from None
    results = []
    for path in paths:
        problems = experiments.lint(path)
        check = subprocess.run([runner.chaos_bin(), "--no-version-check", "--no-log-file", "validate", str(path)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            said = "; ".join(runner.chaos_errors_of(check.stdout + check.stderr))
            problems.append("chaos validate: " + (said or " ".join((check.stdout + check.stderr).split())[-400:]))
        if not problems and LabPaths.of(state_dir).lab_json.exists():
            try:
                runner.check_network(path, state_dir)
            except ChaoslabError as exc:
                problems.append(exc.message)
        results.append({"experiment": path.stem, "path": str(path), "valid": not problems, "problems": problems})
    if as_json:
        _print_json(results)
    else:
        for result in results:
            mark = "[green]✔[/]" if result["valid"] else "[red]✘[/]"
            out.print(f"{mark} {result['experiment']}", highlight=False)
            for problem in result["problems"]:
                out.print(f"    {problem}", highlight=False)
    if not all(r["valid"] for r in results):
        raise typer.Exit(1)


def _parse_vars(items: list[str]) -> dict[str, object]:
    """KEY=VALUE; the value as JSON when it parses (numbers, true, lists), else as a string."""
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"bad --var {item!r}: expected KEY=VALUE", code=2)
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@chaos_app.command("run", epilog="Examples:\n\n"
                   "  chaoslab chaos run kill-payments-replica --load orders\n\n"
                   "  chaoslab chaos run broker-outage --load orders --var outage_s=10\n\n"
                   "  chaoslab chaos run ./my-experiment.yaml --json > verdict.json\n\n"
                   "Exit code: 0 when the verdict passes, 1 when it fails (whatever `chaos run` exited with), "
                   "2 when the experiment cannot run as given (nothing ran), 4 when another command holds the "
                   "lab's lease, 130 on Ctrl-C (after the rollbacks).")
def run_command(
    experiment: Annotated[str, typer.Argument(help="An experiment name (chaos/NAME.json) or path (JSON or YAML).")],
    state_dir: StateDir = STATE_DIR,
    load_scenario: Annotated[str | None, typer.Option(
        "--load", help="A load scenario to run in the background (`chaoslab load SCENARIO`; `orders` is the "
                       "built-in order stream).")] = None,
    load_rate: Annotated[float, typer.Option(help="Orders per second of the built-in order stream.")] = 8.0,
    warmup: Annotated[float, typer.Option(help="Seconds of load before the experiment starts.")] = 10.0,
    var: Annotated[list[str] | None, typer.Option("--var", help="KEY=VALUE configuration override; KEY must be "
                                                                "one of the experiment's configuration keys.")]
    = None,
    runs_dir: RunsDir = RUNS_DIR,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show chaos run's output live.")] = False,
    wait: Wait = 0.0,
    seed: Annotated[int | None, typer.Option(help="What the experiment draws at random (one replica, at random) "
                                                  "is drawn from it: the same seed, the same replica.")] = None,
    as_json: AsJson = False,
) -> None:
    """Run one experiment with `chaos run` (rollbacks always), then print its verdict from the journal. Holds the
    lab's lease while it runs: no other command changes the lab meanwhile. On Ctrl-C, chaos run plays the
    rollbacks and the verdict shows what ran and what was rolled back."""
    from chaoslab.chaos import experiments, report, runner

    try:
        path = experiments.resolve(experiment)
    except FileNotFoundError as exc:
        raise fail(str(exc), code=2) from None
    options = runner.RunOptions(path, state_dir, runs_dir, load_scenario, load_rate, warmup,
                                _parse_vars(var or []), verbose, wait_s=wait, on_wait=waiting, seed=seed)
    started = time.time()
    with errors():
        result = runner.run(options)
    _record(state_dir, path, result.run_dir, started, seed)
    if as_json:
        _print_json(json.loads((result.run_dir / "verdict.json").read_text()) | {"run_dir": str(result.run_dir)})
    else:
        report.print_verdict(out, result.verdict, chaos_exit_code=result.chaos_exit_code,
                             load_summary=result.load_summary, run_dir=str(result.run_dir))
    if result.interrupted:
        err.print(f"[red]interrupted[/]: the rollbacks ran (see the table); journal and logs in {result.run_dir}",
                  highlight=False)
        raise typer.Exit(INTERRUPTED)
    raise typer.Exit(0 if result.verdict.passed else 1)


def _record(state_dir: Path, path: Path, run_dir: Path, started: float, seed: int | None) -> None:
    """The run in the lab's history (chaoslab history); a history that cannot be written is a warning."""
    from chaoslab.history.record import experiment_run

    try:
        experiment_run(state_dir, path.stem, str(path), run_dir, started, time.time(), seed)
    except Exception as exc:  # noqa: BLE001 - the verdict stands without its history row
        err.print(f"[yellow]warning:[/] not recorded in the run history: {exc}", highlight=False)


@chaos_app.command("judge", epilog="Examples:\n\n  chaos run --journal-path journal.json my-experiment.json\n"
                   "  chaoslab chaos judge journal.json\n\n"
                   "Exit code: 0 when the verdict passes, 1 when it fails, 2 when the journal cannot be read.")
def judge_command(
    journal: Annotated[Path, typer.Argument(help="A Chaos Toolkit journal (chaos run's journal.json).")],
    as_json: AsJson = False,
) -> None:
    """Judge the journal of a plain `chaos run` the way `chaoslab chaos run` does: the status, the steady state
    before, during and after, every method activity and rollback, the measurements."""
    from chaoslab.chaos import report, runner

    if not journal.is_file():
        raise fail(f"no journal {journal}", code=2)
    verdict = runner.judge(journal, journal.with_name("chaos.out"))
    if as_json:
        _print_json(verdict.to_json())
    else:
        report.print_verdict(out, verdict, run_dir=str(journal.parent))
    raise typer.Exit(0 if verdict.passed else 1)


@chaos_app.command("new", epilog="Examples:\n\n"
                   "  chaoslab chaos new slow-orders --fault latency --target orders\n\n"
                   "  chaoslab chaos new lossy-payments --fault loss --target payments --output chaos/mine/\n\n"
                   "Fault kinds: kill, stop, pause, latency, errors, cpu, broker (in-service and process faults); "
                   "blackhole, loss, delay, bandwidth, partition, memory, cpu-throttle, disk, clock (below the "
                   "application: an isolated lab).")
def new_command(
    name: Annotated[str, typer.Argument(help="The experiment's name (its file is NAME.yaml).")],
    fault: Annotated[str, typer.Option("--fault", "-f", help="The kind of fault (see below).")],
    target: Annotated[str, typer.Option("--target", "-t", help="The service it hits (ignored for broker).")]
    = "payments",
    output: Annotated[Path, typer.Option("--output", "-o", help="A folder, or a file path ending in .yaml.")]
    = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented experiment from a template: the steady state, the fault, a hold, its undoing, the
    recovery measured, and a rollback; every number a configuration key you can tune or override with --var."""
    from chaoslab.chaos import template

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise fail(f"bad name {name!r}: letters, digits, '.', '_' and '-' only", code=2)
    path = output if output.suffix in (".yaml", ".yml") else output / f"{name}.yaml"
    if path.exists() and not force:
        raise fail(f"{path} exists (use --force to overwrite it)", code=2)
    try:
        text = template.render(name, fault, target, str(path))
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    out.print(f"wrote {path}: edit it, then\n  chaoslab chaos validate {path}\n  chaoslab chaos run {path} "
              "--load orders", highlight=False)


@app.command("faults", epilog="Examples:\n\n  chaoslab faults\n\n  chaoslab faults --service payments\n\n"
             "  chaoslab faults --clear")
def faults(
    state_dir: StateDir = STATE_DIR,
    clear: Annotated[bool, typer.Option("--clear", help="Clear every active fault: in-service faults are "
                                                         "deleted, paused replicas resumed, stopped programs "
                                                         "started.")] = False,
    service: Annotated[str | None, typer.Option(help="Only this service's replicas.")] = None,
    wait: Wait = 0.0,
    as_json: AsJson = False,
) -> None:
    """List the active faults across every replica: in-service faults (admin API, with their remaining TTL),
    process faults (paused or stopped programs, which have no TTL) and, in an isolated lab, the faults below the
    application with what the kernel holds for them (rules, qdiscs, cgroups, mounts, workers, clocks).
    --clear clears them all (under the lab's lease: not while an experiment runs, unless it waits for it)."""
    from chaoslab.chaos import report
    from chaoslab.clients.admin import AdminClient, replicas_of
    from chaoslab.lab import faults as lab_faults
    from chaoslab.lab import registry
    from chaoslab.lab.spec import load_spec

    with errors():
        reg = registry.find(state_dir)
        sv = lab_faults.supervisor_of(state_dir)
        admin = AdminClient.of(reg)
        targets = replicas_of(reg, [service] if service else None)
        procs = lab_faults.process_faults(sv, service)
        spec = load_spec(state_dir)
        held = None
        if spec.isolated:
            from chaoslab.kernel import inventory

            held = inventory.holdings(spec)
        if clear:
            with lease(state_dir, wait_s=wait, on_wait=waiting):
                _clear(spec, admin, sv, targets, procs)
            return
        listed = admin.list_faults(targets)
        from chaoslab.lab import certfaults

        certificates = [f.as_dict() for f in certfaults.active(spec).values()] if spec.tls else []
    if as_json:  # {"replicas": [...], "processes": {"paused", "stopped"}, "kernel", "certificates": [...]}
        _print_json({"replicas": listed, "processes": procs, "kernel": held, "certificates": certificates})
        return
    for fault in certificates:
        left = max(0.0, fault["until"] - time.time())
        out.print(f"certificate fault {fault['id']}: {fault['holder']} holds a {fault['kind']} certificate "
                  f"({fault['identity']}, serial {fault['serial']}) for {left:.0f} s more", highlight=False)
    if held is not None:
        from chaoslab.kernel import inventory

        out.print(report.kernel_table(held))
        if not inventory.active(held):
            out.print("no kernel fault in place")
    if not any(r.get("faults") or "error" in r for r in listed) and not any(procs.values()):
        out.print(f"no active fault on {len(listed)} replica(s)")
        return
    out.print(report.faults_table(listed, procs))


def _clear(spec: Any, admin: Any, sv: Any, targets: Any, procs: dict[str, list[str]]) -> None:
    """End every fault: kernel faults by record and by name, in-service faults, paused and stopped programs."""
    from chaoslab.lab import faults as lab_faults

    if spec.isolated:
        from chaoslab.kernel import inventory

        swept = inventory.sweep(spec)
        out.print(f"ended {len(swept['records'])} kernel fault(s)"
                  + "".join(f"; removed {len(v)} {k}" for k, v in swept.items() if k != "records" and v),
                  highlight=False)
    from chaoslab.lab import certfaults

    if spec.tls:
        ended = certfaults.clear(spec)
        if ended:
            out.print(f"ended {len(ended)} certificate fault(s): {', '.join(f.holder for f in ended)}",
                      highlight=False)
    cleared = admin.clear_faults(targets)
    resumed = lab_faults.resume(sv, procs["paused"])
    started = lab_faults.start_programs(sv, procs["stopped"])
    unreachable = [r["replica"] for r in cleared
                   if "error" in r and r["replica"] not in procs["stopped"] + procs["paused"]]
    out.print(f"cleared {sum(r['cleared'] for r in cleared)} fault(s)"
              + (f"; resumed {', '.join(resumed)}" if resumed else "")
              + (f"; started {', '.join(started)}" if started else "")
              + (f"; unreachable: {', '.join(unreachable)}" if unreachable else ""), highlight=False)


app.add_typer(chaos_app, name="chaos")
