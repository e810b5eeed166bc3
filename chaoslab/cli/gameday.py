"""`chaoslab gameday [--plan quick|full|FILE]`: the lab's main job (chaoslab.gameday does the work).

Exit codes: 0 every verdict passed, 1 a verdict failed (the table and junit.xml name it), 2 the plan is not
valid, 3 no verdict failed but some are inconclusive (the telemetry they rest on was impaired), 4 another command
holds the lab's lease, 130 interrupted. Heavy imports (Chaos Toolkit, Locust's helpers, Jinja2) wait until the
command runs.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from chaoslab.cli.console import errors, out, waiting
from chaoslab.cli.options import RUNS_DIR, STATE_DIR, RunsDir, StartBasePort, StateDir, Wait
from chaoslab.errors import FAILED, INTERRUPTED, RUN_FAILED
from chaoslab.lab.lease import lease

app = typer.Typer()


@app.command("gameday", epilog="Examples:\n\n  chaoslab gameday                 (the quick plan)\n\n"
             "  chaoslab gameday --plan full --down\n\n  chaoslab gameday --plan my-plan.yaml --check\n\n"
             "  chaoslab gameday --plan quick --repeat 5 --seed 42   (a set of 5 runs for chaoslab compare)")
def gameday(
    plan: Annotated[str, typer.Option("--plan", "-p", help="quick, full (plans/*.yaml) or a plan file; "
                                                          "the format is in plans/README.md.")] = "quick",
    state_dir: StateDir = STATE_DIR,
    base_port: StartBasePort = None,
    runs_dir: RunsDir = RUNS_DIR,
    down: Annotated[bool, typer.Option("--down", help="Stop the lab at the end if the gameday started it.")]
    = False,
    grafana_url: Annotated[str | None, typer.Option(envvar="GRAFANA_URL", show_envvar=True,
                                                    help="Post the fault windows as annotations to this Grafana "
                                                         "(token from $GRAFANA_TOKEN, or user:password@ in "
                                                         "the URL).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only validate the plan and print it.")] = False,
    wait: Wait = 0.0,
    repeat: Annotated[int, typer.Option("--repeat", "-n", min=1, help="Run the plan N times with one seed: a set "
                                                                      "for `chaoslab compare` (runs/<time>-set-<plan>/"
                                                                      ").")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="What the plan draws at random (a replica to kill, a "
                                                            "fault's replica) is drawn from it: the same seed, the "
                                                            "same targets. Default: the plan's `seed`, else random "
                                                            "(with --repeat: one, printed).")] = None,
) -> None:
    """The lab's main job: a baseline load, then each experiment of the plan under load, judged.

    For each experiment: the hypothesis before, during and after; every expected alert (reached the webhook,
    time-to-detect, resolved); time-to-recover; the client's error ratio and latency during the fault; the
    data audit. Writes runs/<time>-gameday-<plan>/ with summary.json, junit.xml (one test case per verdict),
    the Chaos Toolkit journals, Locust's reports and report.html (one file, opens offline).
    """
    from chaoslab.gameday import plan as plans
    from chaoslab.gameday import runner
    from chaoslab.gameday.console import UI, verdict_table

    with errors():
        chosen = plans.load(plan)
    ui = UI(out)
    if check:
        ui.console.print(f"plan {chosen.name} ({chosen.source}) is valid: "
                         f"{', '.join(e.name for e in chosen.experiments)}"
                         + (f"; scaling {chosen.scaling.service}" if chosen.scaling else ""), highlight=False)
        return
    options = runner.Options(state_dir=state_dir, runs_dir=runs_dir, base_port=base_port, down=down,
                             grafana_url=grafana_url, grafana_token=os.environ.get("GRAFANA_TOKEN"), seed=seed)
    if repeat > 1:
        from chaoslab.cli.gameday_repeat import run_set

        raise typer.Exit(run_set(chosen, options, ui, repeat, seed, wait))
    with errors(), lease(state_dir, wait_s=wait, on_wait=waiting):  # no other command changes the lab meanwhile
        result = runner.run(chosen, options, ui)
    verdicts = result.all_verdicts()
    ui.console.print(verdict_table(verdicts, f"gameday {chosen.name}: every verdict"))
    failed = [v for v in verdicts if v.status == "failed"]
    inconclusive = [v for v in verdicts if v.status == "inconclusive"]
    where = f"report: {result.run_dir / 'report.html'}  junit: {result.run_dir / 'junit.xml'}"
    if result.interrupted:
        ui.console.print(f"[bold red]INTERRUPTED[/] after {result.duration_s:g} s; {where}", highlight=False)
        raise typer.Exit(INTERRUPTED)
    if failed:
        ui.console.print(f"[bold red]FAILED[/]: {len(failed)} of {len(verdicts)} verdicts failed "
                         f"({', '.join(v.id for v in failed)}) in {result.duration_s:g} s; {where}", highlight=False)
        raise typer.Exit(FAILED)
    if inconclusive:
        ui.console.print(f"[bold yellow]INCONCLUSIVE[/]: {len(inconclusive)} of {len(verdicts)} verdicts rest on "
                         f"impaired evidence ({', '.join(v.id for v in inconclusive)}); nothing failed, but this run "
                         f"proves nothing about them; {where}", highlight=False)
        raise typer.Exit(RUN_FAILED)
    ui.console.print(f"[bold green]PASSED[/]: all {len(verdicts)} verdicts in {result.duration_s:g} s; {where}",
                     highlight=False)
