"""`chaoslab coverage`: every fault class against every service it applies to, and which alerts each set off."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from chaoslab.cli.console import err, errors, fail, out, waiting
from chaoslab.cli.options import RUNS_DIR, STATE_DIR, AsJson, RunsDir, StateDir, Wait
from chaoslab.errors import FAILED
from chaoslab.lab.lease import lease

app = typer.Typer()


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command("coverage", epilog="Examples:\n\n  chaoslab coverage    (every in-service fault, every service: "
             "about 40 runs, 30-40 minutes)\n\n"
             "  chaoslab coverage --faults stop,errors --services payments\n\n"
             "  chaoslab coverage --plan full    (the plan's coverage block: its faults, services and fault_s)\n\n"
             "  chaoslab coverage --json > coverage.json\n\nExit code: 0 when every fault that must be detected was "
             "(stop: ServiceDown, errors: AvailabilityBurnRateFast, broker: BrokerDown; the catalogue's must_detect in "
             "chaoslab/chaos/template.py), 1 otherwise, 2 for a bad command line, 4 when another command holds the "
             "lab's lease. Writes runs/<time>-coverage-*/coverage.html and coverage.json.")
def coverage(
    faults: Annotated[str | None, typer.Option(help="Fault kinds, comma separated (chaoslab chaos new's kinds; "
                                                    "default: every one the lab can run).")] = None,
    services: Annotated[str | None, typer.Option(help="Target services, comma separated (default: all).")] = None,
    fault_s: Annotated[float | None, typer.Option(help="How long each fault is held, seconds (default: the plan's "
                                                       "fault_s, else 20).")] = None,
    plan: Annotated[str | None, typer.Option(help="A gameday plan (a name in plans/ or a path) whose coverage block "
                                                  "gives the faults, services and fault_s; the options above "
                                                  "override it.")] = None,
    state_dir: StateDir = STATE_DIR,
    runs_dir: RunsDir = RUNS_DIR,
    wait: Wait = 0.0,
    as_json: AsJson = False,
) -> None:
    """Run every fault class of the catalogue against every target under a light load and print the fault x alert
    matrix: the alerts each fault set off, blind spots (a fault clients saw, or one that must be detected, that no
    alert saw) and dead alerts (in the catalogue, fired by no fault)."""
    from chaoslab.gameday import coverage as cov
    from chaoslab.lab import registry

    with errors():
        kinds, targets = _split(faults), _split(services)
        if plan is not None:
            from chaoslab.gameday.plan import load

            block = load(plan).coverage
            if block is None:
                raise fail(f"plan {plan} has no coverage block (plans/README.md: coverage)", code=2)
            kinds, targets = kinds or block.faults or None, targets or block.services or None
            fault_s = fault_s if fault_s is not None else block.fault_s
        fault_s = fault_s if fault_s is not None else 20.0
        if fault_s <= 0:
            raise fail("--fault-s must be more than 0", code=2)
        isolated = registry.find(state_dir).get("network", {}).get("mode") == "isolated"
        try:
            cells = cov.plan_cells(kinds, targets, isolated)
        except ValueError as exc:
            raise fail(str(exc), code=2) from None
        with lease(state_dir, wait_s=wait, on_wait=waiting):
            def progress(index: int, cell: cov.Cell) -> None:
                mark = " [bold red]BLIND[/]" if cell.blind else ""
                err.print(f"[{index + 1}/{len(cells)}] {cell.fault} {cell.target}: "
                          f"{escape(', '.join(cell.alerts) or 'no alert')}{mark}"
                          + (f" ({escape(cell.error)})" if cell.error else ""), highlight=False)

            result, run_dir = cov.run(state_dir, runs_dir, cells, fault_s=fault_s, on_cell=progress)
    (run_dir / "coverage.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (run_dir / "coverage.html").write_text(cov.render(result))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json() | {"run_dir": str(run_dir)}, indent=2) + "\n")
    else:
        table = Table(title="detection coverage: the alerts each fault set off", title_justify="left")
        for column in ("fault", "target", "clients saw it", "alerts", ""):
            table.add_column(column, overflow="fold")
        for cell in result.cells:
            error = f" [red]{escape(cell.error)}[/]" if cell.error else ""
            table.add_row(cell.fault, cell.target, "yes" if cell.degraded else "no",
                          escape(", ".join(cell.alerts) or "-") + error, "[bold red]BLIND[/]" if cell.blind else "")
        out.print(table)
        out.print(f"blind spots: {', '.join(f'{c.fault} {c.target}' for c in result.blind_spots) or 'none'}",
                  highlight=False)
        out.print(f"dead alerts: {', '.join(result.dead_alerts) or 'none'}", highlight=False)
        out.print(f"matrix: {run_dir / 'coverage.html'}", highlight=False)
    raise typer.Exit(0 if result.passed else FAILED)
