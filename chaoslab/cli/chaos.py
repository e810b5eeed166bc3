"""`chaoslab chaos list|validate|run` and `chaoslab faults`: Chaos Toolkit experiments against the native lab,
judged from their journals, and the faults the lab holds.

Chaos Toolkit and the runner are imported inside the commands: every other `chaoslab` command starts without
paying for them.
"""

from __future__ import annotations

import json
import subprocess
from typing import Annotated, Any

import typer

from chaoslab.cli.console import errors, fail, out, waiting
from chaoslab.cli.options import RUNS_DIR, STATE_DIR, RunsDir, StateDir, Wait
from chaoslab.lab.lease import lease

app = typer.Typer()
chaos_app = typer.Typer(
    name="chaos", no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
    help="Chaos Toolkit experiments against the native lab, judged from their journals.",
)

@chaos_app.command("list")
def list_experiments() -> None:
    """List the native experiments (chaos/*.json)."""
    from chaoslab.chaos import experiments, report

    out.print(report.experiments_table([experiments.describe(p) for p in experiments.all_experiments()]))


@chaos_app.command()
def validate(
    experiment: Annotated[str | None, typer.Argument(help="An experiment name or path; all when omitted.")] = None,
) -> None:
    """Validate experiments: `chaos validate`, plus chaoslab's own checks (hypothesis, method, rollbacks,
    no hard-coded address, only exported extension functions). Exit 1 when any is invalid."""
    from chaoslab.chaos import experiments, runner

    try:
        paths = [experiments.resolve(experiment)] if experiment else experiments.all_experiments()
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    bad = 0
    for path in paths:
        problems = experiments.lint(path)
        check = subprocess.run([runner.chaos_bin(), "--no-version-check", "--no-log-file", "validate", str(path)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            problems.append("chaos validate: " + " ".join((check.stdout + check.stderr).split())[-400:])
        if problems:
            bad += 1
            out.print(f"[red]✘[/] {path.stem}", highlight=False)
            for problem in problems:
                out.print(f"    {problem}", highlight=False)
        else:
            out.print(f"[green]✔[/] {path.stem}", highlight=False)
    if bad:
        raise typer.Exit(1)


def _parse_vars(items: list[str]) -> dict[str, object]:
    """KEY=VALUE; the value as JSON when it parses (numbers, true, lists), else as a string."""
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"bad --var {item!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


@chaos_app.command("run", epilog="Examples:\n\n"
                   "  chaoslab chaos run kill-payments-replica --load orders\n\n"
                   "  chaoslab chaos run broker-outage --load orders --var outage_s=10\n\n"
                   "Exit code: 0 when the verdict passes, 1 when it fails (whatever `chaos run` exited with).")
def run_command(
    experiment: Annotated[str, typer.Argument(help="An experiment name (chaos/NAME.json) or path.")],
    state_dir: StateDir = STATE_DIR,
    load_scenario: Annotated[str | None, typer.Option(
        "--load", help="A load scenario to run in the background (`chaoslab load SCENARIO`; `orders` is the "
                       "built-in order stream).")] = None,
    load_rate: Annotated[float, typer.Option(help="Orders per second of the built-in order stream.")] = 8.0,
    warmup: Annotated[float, typer.Option(help="Seconds of load before the experiment starts.")] = 10.0,
    var: Annotated[list[str] | None, typer.Option("--var", help="KEY=VALUE configuration override.")] = None,
    runs_dir: RunsDir = RUNS_DIR,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show chaos run's output live.")] = False,
    wait: Wait = 0.0,
) -> None:
    """Run one experiment with `chaos run` (rollbacks always), then print its verdict from the journal. Holds the
    lab's lease while it runs: no other command changes the lab meanwhile."""
    from chaoslab.chaos import experiments, report, runner

    try:
        path = experiments.resolve(experiment)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    options = runner.RunOptions(path, state_dir, runs_dir, load_scenario, load_rate, warmup,
                                _parse_vars(var or []), verbose, wait_s=wait, on_wait=waiting)
    with errors():
        result = runner.run(options)
    report.print_verdict(out, result.verdict, chaos_exit_code=result.chaos_exit_code,
                         load_summary=result.load_summary, run_dir=str(result.run_dir))
    raise typer.Exit(0 if result.verdict.passed else 1)


@app.command("faults", epilog="Examples:\n\n  chaoslab faults\n\n  chaoslab faults --service payments\n\n"
             "  chaoslab faults --clear")
def faults(
    state_dir: StateDir = STATE_DIR,
    clear: Annotated[bool, typer.Option("--clear", help="Clear every active fault: in-service faults are "
                                                         "deleted, paused replicas resumed, stopped programs "
                                                         "started.")] = False,
    service: Annotated[str | None, typer.Option(help="Only this service's replicas.")] = None,
    wait: Wait = 0.0,
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
