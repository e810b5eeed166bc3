"""`chaoslab load` and `chaoslab scale-test`: Locust scenarios against the lab, judged by their thresholds, and
the per-service scaling check. Locust itself is imported only by the processes chaoslab.load.runner starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from chaoslab.cli.console import err, errors, out, waiting
from chaoslab.cli.options import STATE_DIR, StateDir, Wait
from chaoslab.errors import FAILED, INTERRUPTED, LoadError
from chaoslab.lab.paths import DEFAULT_RUNS_DIR, new_run_dir
from loadtests import scenarios  # plain data, no Locust import
from loadtests.thresholds import OVERRIDE_HELP, apply_overrides

app = typer.Typer()


def _usage(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call a validator; its ValueError is a usage error for people."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise LoadError(str(exc)) from None


SCENARIO_LIST = "; ".join(f"{s.name}: {s.summary}" for s in scenarios.SCENARIOS.values())


@app.command("load", epilog=f"Scenarios: {SCENARIO_LIST}.\n\nExamples:\n\n  chaoslab load smoke\n\n"
             "  chaoslab load rate --rate 25 --duration 2m\n\n"
             "  chaoslab load ramp --locustfile my_locustfile.py --user-class CheckoutUser")
def load(
    scenario: Annotated[str, typer.Argument(help=f"One of: {', '.join(scenarios.SCENARIOS)}.", show_default=False)],
    users: Annotated[int | None, typer.Option("--users", "-u", help="Peak users (default: the scenario's).")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests/s, for the rate scenario.")] = None,
    duration: Annotated[str | None, typer.Option("--duration", "-d",
                                                 help="How long: 90, 90s, 5m, 1h30m (default: the scenario's).")]
    = None,
    host: Annotated[str | None, typer.Option(help="The gateway URL of any deployment (default: the lab's).")] = None,
    ui: Annotated[bool, typer.Option("--ui", help="Open Locust's web UI instead of the terminal view.")] = False,
    workers: Annotated[int, typer.Option(help="Locust worker processes (distributed mode); 0 runs one process.")]
    = 0,
    run_dir: Annotated[Path | None, typer.Option(help="Where reports go (default runs/<time>-load-<scenario>).")]
    = None,
    threshold: Annotated[list[str] | None, typer.Option("--threshold", "-t", help=f"Override: {OVERRIDE_HELP}.")]
    = None,
    mix: Annotated[str | None, typer.Option(help=f"Journey mix: {', '.join(scenarios.MIXES)}.")] = None,
    locustfile: Annotated[Path | None, typer.Option(
        "--locustfile", "-f", envvar="LOCUST_LOCUSTFILE", show_envvar=True,
        help="Your own locustfile: its user classes run instead of chaoslab's journeys, with the scenario's "
             "shape, thresholds, metrics and reports (Locust's own LOCUST_LOCUSTFILE works too).")] = None,
    user_class: Annotated[list[str] | None, typer.Option(
        "--user-class", help="With --locustfile: run only this class of it (repeatable; default: all).")] = None,
    state_dir: StateDir = STATE_DIR,
) -> None:
    """Run a load scenario against the lab's gateway (or --host) and judge it against its thresholds.

    Writes Locust's CSV and HTML report, the command line and a summary.json into the run dir.

    Exit code: 0 all thresholds held, 1 a threshold was violated (listed), 2 a bad command line or no lab,
    3 Locust failed.
    """
    from chaoslab.load import runner
    from chaoslab.load.progress import LiveView
    from chaoslab.load.report import failed_checks, print_summary
    from chaoslab.load.target import resolve

    with errors():
        chosen = _usage(scenarios.get, scenario)
        duration_s = _usage(scenarios.parse_duration, duration) if duration is not None else None
        params = _usage(chosen.params, users, duration_s, rate)
        if mix is not None and mix not in scenarios.MIXES:
            raise LoadError(f"unknown mix {mix!r}; known: {', '.join(scenarios.MIXES)}")
        if user_class and locustfile is None:
            raise LoadError("--user-class picks classes of your --locustfile; give the file too")
        if locustfile is not None:
            if mix is not None:
                raise LoadError("--mix chooses among chaoslab's journeys; with --locustfile your classes run")
            locustfile = runner.check_locustfile(locustfile, user_class or [])
            mix = scenarios.MIX_CUSTOM
        _usage(apply_overrides, scenarios.thresholds_for(chosen, params, mix), threshold or [])
        if workers < 0:
            raise LoadError(f"--workers must be 0 or more, not {workers}")
        target = resolve(state_dir, host)
        directory = run_dir or new_run_dir(DEFAULT_RUNS_DIR, "load", chosen.name)
        req = runner.LoadRequest(scenario=chosen.name, target=target, run_dir=directory, users=users,
                                 duration_s=duration_s, rate=rate, mix=mix, thresholds=threshold or [], ui=ui,
                                 workers=workers, locustfile=locustfile, user_classes=tuple(user_class or ()))
        _print_plan(chosen, params, target.host, directory, target.metrics_port, target.registry is not None, ui)
        if locustfile is not None:
            out.print(f"  users: {', '.join(user_class or []) or 'every user class'} of {locustfile}",
                      highlight=False)
        metrics_url = f"http://127.0.0.1:{target.metrics_port}/metrics"
        started = time.time()
        if ui:
            outcome = runner.run(req, params.duration_s, on_started=lambda url: out.print(
                f"Locust web UI: [bold]{url}[/]  (the scenario starts at once; Ctrl-C ends the run and writes the "
                "reports)", highlight=False))
        else:
            with LiveView(err, f"{chosen.name}", params.duration_s, metrics_url) as view:
                outcome = runner.run(req, params.duration_s, on_tick=view.tick)
        if outcome.summary is None:
            raise LoadError("the run was interrupted before Locust wrote its summary", exit_code=INTERRUPTED)
        print_summary(out, outcome.summary)
        if target.registry is not None:  # a lab's run: into its history (chaoslab history)
            _record(state_dir, chosen.name, directory, outcome.summary, started)
        out.print(f"reports: {directory}/ ({', '.join(p.name for p in outcome.files())})", highlight=False)
        failed = failed_checks(outcome.summary)
        if outcome.interrupted and not ui:  # with --ui, Ctrl-C is how a run ends: judge it like any other
            raise typer.Exit(130)
        if failed:
            err.print(f"[bold red]{len(failed)} threshold(s) violated:[/]")
            for check in failed:
                err.print(f"  {check['what']} {check['limit']}: observed {check['observed']}", highlight=False,
                          markup=False)
            raise typer.Exit(FAILED)
        out.print("[green]all thresholds held[/]")


def _record(state_dir: Path, scenario: str, directory: Path, summary: dict[str, Any], started: float) -> None:
    from chaoslab.history.record import load_run

    try:
        load_run(state_dir, scenario, directory, summary, started, time.time())
    except Exception as exc:  # noqa: BLE001 - the run's verdict stands without its history row
        err.print(f"[yellow]warning:[/] not recorded in the run history: {exc}", highlight=False)


def _print_plan(scenario: scenarios.Scenario, params: scenarios.Params, host: str, directory: Path,
                metrics_port: int, lab: bool, ui: bool) -> None:
    from loadtests import shapes

    line = f"[bold]{scenario.name}[/]: {scenario.summary}\n  against {host}, peak {params.users} users, " \
           f"{params.duration_s:g} s"
    if params.rate:
        per_user = shapes.per_user_throughput(params.rate, params.users)
        line += (f"\n  constant arrival rate: {params.rate:g} req/s = {params.users} users x {per_user:.3g} "
                 f"requests/s each (one request every {1 / per_user:.2g} s per user)")
    where = "the lab's Prometheus scrapes it as job=locust" if lab else "no lab: not scraped"
    line += f"\n  client metrics on http://127.0.0.1:{metrics_port}/metrics ({where})\n  reports in {directory}/"
    out.print(line, highlight=False)


@app.command("scale-test")
def scale_test(
    service: Annotated[str, typer.Argument(help="The service to scale (payments).", show_default=False)],
    replicas: Annotated[str, typer.Option(help="Replica counts to measure, comma separated.")] = "1,2,3",
    scenario: Annotated[str, typer.Option(help="The load shape that drives it to saturation.")] = "step",
    duration: Annotated[str, typer.Option("--duration", "-d", help="Load per replica count: 50s, 2m.")] = "50s",
    users_per_replica: Annotated[int | None, typer.Option(
        help="Peak users per replica (default: 4 x the provider's concurrency limit).")] = None,
    provider_latency_ms: Annotated[int, typer.Option(
        help="payments: the simulated provider's latency during the test (0 keeps the lab's setting).")] = 250,
    provider_concurrency: Annotated[int, typer.Option(
        help="payments: the provider's concurrency limit per replica during the test (0 keeps the lab's).")] = 2,
    min_efficiency: Annotated[float, typer.Option(
        help="Pass when throughput(N) / (N x throughput(1)) at the largest N is at least this.")] = 0.9,
    run_dir: Annotated[Path | None, typer.Option(help="Where results go (default runs/<time>-scale-<service>).")]
    = None,
    state_dir: StateDir = STATE_DIR,
    wait: Wait = 0.0,
) -> None:
    """Scale a service through its replica counts, drive each to saturation, and report the scaling efficiency.

    Writes scaling.json (and each run's Locust reports) into the run dir.

    Exit 1 when the efficiency at the largest replica count is below --min-efficiency, 4 when another command
    holds the lab's lease (it scales the lab and changes the service's environment: no experiment may run
    meanwhile). The lab goes back to its replica count at the end.
    """
    from chaoslab.lab.lease import lease
    from chaoslab.load import scaletest

    with errors():
        counts = _usage(scaletest.parse_replicas, replicas)
        duration_s = _usage(scenarios.parse_duration, duration)
        _usage(scenarios.get, scenario)
        if not 0 < min_efficiency <= 1.5:
            raise LoadError(f"--min-efficiency must be in (0, 1.5], not {min_efficiency:g}")
        if users_per_replica is not None and users_per_replica < 1:
            raise LoadError(f"--users-per-replica must be at least 1, not {users_per_replica}")
        if provider_latency_ms < 0 or provider_concurrency < 0:
            raise LoadError("--provider-latency-ms and --provider-concurrency must be 0 (keep) or more")
        provider = {k: str(v) for k, v in (("PROVIDER_LATENCY_MS", provider_latency_ms),
                                           ("PROVIDER_CONCURRENCY", provider_concurrency)) if v}
        with lease(state_dir, wait_s=wait, on_wait=waiting):
            result = scaletest.run(
                scaletest.ScaleRequest(service=service, replicas=counts, scenario=scenario, duration_s=duration_s,
                                       users_per_replica=users_per_replica, min_efficiency=min_efficiency,
                                       state_dir=state_dir, run_dir=run_dir,
                                       provider_env=provider if service == "payments" else None),
                out, err,
            )
        if not result["passed"]:
            raise typer.Exit(FAILED)
