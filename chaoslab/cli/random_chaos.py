"""`chaoslab chaos random`: seeded random chaos under load. The schedule is drawn from the seed and the lab's
topology (chaoslab.chaos.schedule), then run as a gameday of one entry of overlapping faults
(chaoslab.gameday.combined): the same report, verdicts per fault window, history and score. The plan it ran is in
the run directory (plan.yaml): `chaoslab gameday --plan runs/.../plan.yaml` replays exactly that schedule."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from chaoslab.cli.chaos import chaos_app
from chaoslab.cli.console import err, errors, fail, out, waiting
from chaoslab.cli.options import RUNS_DIR, STATE_DIR, AsJson, RunsDir, StateDir, Wait
from chaoslab.errors import FAILED, INTERRUPTED, RUN_FAILED, USAGE
from chaoslab.lab.lease import lease


def _seconds(text: str, what: str) -> float:
    from loadtests.scenarios import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise fail(f"bad {what}: {exc}", code=USAGE) from None


def _range(text: str, what: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    if not sep:
        raise fail(f"bad {what} {text!r}: expected MIN-MAX, e.g. 10s-60s", code=USAGE)
    return _seconds(low, what), _seconds(high, what)


def _items(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def schedule_table(schedule: list[Any], executed: dict[str, dict[str, Any]] | None = None) -> Table:
    table = Table(title="the schedule" + (" (planned and played)" if executed else ""), title_justify="left")
    for column in ("fault", "kind", "target", "replica", "at", "for", *(("started at", "undone by")
                                                                        if executed else ())):
        table.add_column(column, justify="right" if column in ("at", "for", "started at") else "left")
    for p in schedule:
        row = [p.name, p.kind, p.target, str(p.replica), f"{p.at_s:g} s", f"{p.duration_s:g} s"]
        if executed is not None:
            w = executed.get(p.name)
            row += [f"{w['offset_s']:.1f} s", w["undone_by"]] if w else ["-", "not played"]
        table.add_row(*map(escape, row))
    return table


@chaos_app.command("random", epilog="Examples:\n\n"
                   "  chaoslab chaos random --duration 10m --seed 42\n\n"
                   "  chaoslab chaos random --duration 5m --seed 7 --faults kill,latency,pause --max-concurrent 2\n\n"
                   "  chaoslab chaos random --duration 10m --seed 42 --dry-run   (the schedule only: same seed, same "
                   "schedule)\n\n"
                   "Fault kinds (chaoslab chaos new's catalogue): kill, stop, pause, latency, errors, cpu, broker; "
                   "below the application, on an isolated lab and only when named: blackhole, loss, delay, "
                   "bandwidth, partition, memory, cpu-throttle, disk, clock. Exit code: 0 every verdict passed, 1 one "
                   "failed (the safeguard's included), 2 bad options or a schedule this lab cannot run, 3 "
                   "inconclusive, 4 another command holds the lab's lease, 130 Ctrl-C (every fault undone first).")
def random_command(
    duration: Annotated[str, typer.Option("--duration", "-d", help="How long faults are scheduled: 90s, 10m, "
                                                                   "1h.")] = "10m",
    seed: Annotated[int | None, typer.Option(help="The seed: the same seed on the same lab draws the same faults, "
                                                  "targets and times (default: a new one, printed).")] = None,
    faults: Annotated[list[str] | None, typer.Option("--faults", "-f", help="Fault kinds to draw from, comma-"
                                                                           "separated (default: every in-service "
                                                                           "and process fault).")] = None,
    targets: Annotated[list[str] | None, typer.Option("--targets", help="Services (or broker) to draw targets from "
                                                                       "(default: all but the gateway, and the "
                                                                       "broker).")] = None,
    max_concurrent: Annotated[int, typer.Option(help="At most this many faults at once.")] = 2,
    fault_duration: Annotated[str, typer.Option(help="Each fault lasts MIN-MAX, drawn.")] = "10s-60s",
    gap: Annotated[str, typer.Option(help="Between two fault starts: MIN-MAX, drawn.")] = "15s-60s",
    rest: Annotated[str, typer.Option(help="After a fault, its target rests this long before another fault may hit "
                                           "it (so that two faults on one target do not read as one).")] = "10s",
    load: Annotated[str, typer.Option("--load", help="The Locust scenario running throughout.")] = "rate",
    rate: Annotated[float | None, typer.Option(help="Requests/s of the rate scenario.")] = 8.0,
    warmup: Annotated[float, typer.Option(help="Seconds of load before the first fault.")] = 10.0,
    max_burn_rate: Annotated[float, typer.Option(help="The safeguard: stop and undo everything when the gateway "
                                                      "burns its error budget faster than this over 10 s.")] = 250.0,
    max_error_ratio: Annotated[float, typer.Option(help="Clients' error budget per fault window.")] = 0.05,
    recover_within: Annotated[float, typer.Option(help="Seconds each target (and the shop) has to recover.")]
    = 60.0,
    settle: Annotated[float, typer.Option(help="Afterwards, seconds to wait for alerts to resolve.")] = 30.0,
    audit: Annotated[bool, typer.Option("--audit/--no-audit", help="The data audit at the end.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the schedule and exit: nothing is injected.")]
    = False,
    state_dir: StateDir = STATE_DIR,
    runs_dir: RunsDir = RUNS_DIR,
    wait: Wait = 0.0,
    as_json: AsJson = False,
) -> None:
    """Seeded random chaos under load: faults of the catalogue on random targets at random times, at most
    --max-concurrent at once, each judged on its own window (injected, rolled back, its target's recovery, the
    clients' errors, the alerts attributed to it), under the experiments' safeguard. Holds the lab's lease; on
    Ctrl-C every fault is undone before it exits (check with chaoslab faults)."""
    from chaoslab.chaos import schedule as schedules
    from chaoslab.gameday import plan as plans
    from chaoslab.gameday import runner
    from chaoslab.gameday.console import UI, verdict_table
    from chaoslab.lab import registry
    from chaoslab.observability.alerts import alert_labels

    total_s = _seconds(duration, "--duration")
    chosen_seed = seed if seed is not None else secrets.randbelow(2**31)
    kinds = _items(faults) or schedules.DEFAULT_KINDS
    options = schedules.RandomOptions(total_s, chosen_seed, kinds, _items(targets), max_concurrent,
                                      _range(fault_duration, "--fault-duration"), _range(gap, "--gap"),
                                      _seconds(rest, "--rest"))
    with errors():
        reg = registry.find(state_dir)
    services = schedules.topology(reg)
    problems = schedules.option_problems(options, services)
    if problems:
        raise fail("; ".join(problems), code=USAGE)
    drawn = schedules.random_schedule(options, services)
    if not drawn:
        raise fail(f"no fault fits in {duration} with gaps of {gap}: lengthen --duration or shorten --gap",
                   code=USAGE)
    problems = schedules.problems(drawn, services, reg.get("network", {}).get("mode") == "isolated")
    if problems:
        raise fail("this lab cannot run the schedule: " + "; ".join(problems), code=USAGE)
    if dry_run:
        if as_json:
            sys.stdout.write(json.dumps({"seed": chosen_seed, "duration_s": total_s, "topology": services,
                                         "faults": [p.to_json() for p in drawn]}, indent=2) + "\n")
        else:
            out.print(f"seed {chosen_seed}: {len(drawn)} fault(s) over {duration} on {services}", highlight=False)
            out.print(schedule_table(drawn))
        return
    name = f"random-{chosen_seed}"
    load_spec: dict[str, Any] = {"scenario": load, "baseline_s": 0, "warmup_s": warmup}
    if load == "rate":
        load_spec["rate"] = rate
    data = {
        "name": name, "seed": chosen_seed,
        "description": f"seeded random chaos (seed {chosen_seed}): {len(drawn)} fault(s) of {', '.join(kinds)} over "
                       f"{duration}, at most {max_concurrent} at once, under {load} load",
        "load": load_spec,
        "experiments": [{"name": name, "faults": [{k: v for k, v in p.to_json().items()} for p in drawn],
                         "safeguard": {"service": "gateway", "max_burn_rate": max_burn_rate, "window": "10s"},
                         "client": {"max_error_ratio": max_error_ratio}, "max_time_to_recover_s": recover_within,
                         "settle_s": settle, "data_audit": audit,
                         # random faults page by design: every page is attributed to its fault in the report, the
                         # findings to read; the plan's noise verdict would fail every random run on them
                         "allowed_pages": sorted(alert_labels())}],
    }
    with errors():
        plan = plans.parse(data, f"chaoslab chaos random --seed {chosen_seed}")
    ui = UI(err if as_json else out)  # --json: stdout holds the JSON alone
    ui.console.print(f"seed [bold]{chosen_seed}[/]: {len(drawn)} fault(s) over {duration}", highlight=False)
    ui.console.print(schedule_table(drawn))
    with errors(), lease(state_dir, wait_s=wait, on_wait=waiting):
        result = runner.run(plan, runner.Options(state_dir=state_dir, runs_dir=runs_dir, seed=chosen_seed), ui)
    entry = result.experiments[0] if result.experiments else None
    played = {w["name"]: w for w in ((entry.combined or {}).get("windows", []) if entry else [])}
    verdicts = result.all_verdicts()
    if as_json:
        sys.stdout.write(json.dumps({"seed": chosen_seed, "run_dir": str(result.run_dir), "passed": result.passed,
                                     "interrupted": result.interrupted, "schedule": [p.to_json() for p in drawn],
                                     "windows": list(played.values()),
                                     "verdicts": [v.to_json() for v in verdicts]}, indent=2, default=str) + "\n")
    else:
        ui.console.print(schedule_table(drawn, played))
        ui.console.print(verdict_table(verdicts, f"chaos random --seed {chosen_seed}: every verdict"))
        ui.console.print(f"report: {result.run_dir / 'report.html'}", highlight=False)
    if result.interrupted:
        raise typer.Exit(INTERRUPTED)
    if any(v.status == "failed" for v in verdicts):
        raise typer.Exit(FAILED)
    if any(v.status == "inconclusive" for v in verdicts):
        raise typer.Exit(RUN_FAILED)
