"""`chaoslab gameday --repeat N --seed S`: N repetitions of one plan with one seed, a set to compare
(`chaoslab compare`). Each repetition is a whole gameday; they share the seed, so the same faults hit the same
targets at the same moments of their runs and what differs between runs is the system's own noise.

The set directory, runs/<time>-set-<plan>/, holds the N run directories and set.json (the set's id, plan, seed,
commit and each run's status, score and run-level figures); every run is also in the lab's history with the
set's id."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

from rich.markup import escape
from rich.table import Table

from chaoslab.cli.console import errors, waiting
from chaoslab.errors import FAILED, INTERRUPTED, RUN_FAILED
from chaoslab.lab.lease import lease
from chaoslab.lab.paths import new_run_dir


def _table(rows: list[dict[str, Any]]) -> Table:
    from chaoslab.history.figures import TRENDED, fmt

    table = Table(title="the set's repetitions", title_justify="left")
    for column in ("#", "status", "score", "detect", "recover", "errors", "p99", "budget", "run dir"):
        table.add_column(column, justify="left" if column in ("status", "run dir") else "right")
    for row in rows:
        figures = row["figures"]
        table.add_row(str(row["repetition"]), row["status"], fmt("score", figures.get("score")),
                      *(fmt(f, figures.get(f)) for f in TRENDED[1:]), escape(row["run_dir"]))
    return table


def run_set(plan: Any, options: Any, ui: Any, repeat: int, seed: int | None, wait: float) -> int:
    """Run the set; the exit code (1 when a repetition failed a verdict, 3 inconclusive only, 130 interrupted)."""
    from chaoslab.gameday import runner
    from chaoslab.gameday.resilience import status_of
    from chaoslab.history import commit
    from chaoslab.history.figures import RUN

    if seed is None:
        seed = plan.seed if plan.seed is not None else secrets.randbelow(2**31)
        ui.note(f"seed {seed} (give --seed {seed} to repeat these draws on another commit)")
    set_dir = new_run_dir(options.runs_dir, "set", plan.name)
    record: dict[str, Any] = {"set_id": set_dir.name, "plan": plan.name, "source": plan.source, "seed": seed,
                              "repetitions": repeat, "commit": vars(commit.current()), "runs": []}
    statuses = []
    started_lab = False
    with errors(), lease(options.state_dir, wait_s=wait, on_wait=waiting):
        for i in range(1, repeat + 1):
            ui.phase(f"repetition [bold]{i}/{repeat}[/] of {plan.name} (seed {seed}, set {set_dir.name})")
            # --down stops the lab after the last repetition, and only if the first one started it
            result = runner.run(plan, replace(options, runs_dir=set_dir, seed=seed, set_id=set_dir.name,
                                              repetition=i, down=False), ui)
            started_lab = started_lab or bool(result.lab.get("started_by_gameday"))
            status = status_of(result)
            statuses.append(status)
            figures = {f["figure"]: f["value"] for f in (result.resilience or {}).get("figures", [])
                       if f["suite"] == RUN}
            record["runs"].append({"repetition": i, "run_dir": str(result.run_dir), "status": status,
                                   "score": (result.resilience or {}).get("score", {}).get("value"),
                                   "figures": figures})
            (set_dir / "set.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
            if result.interrupted:
                break
        if options.down and started_lab:
            from chaoslab.lab import control

            control.down(options.state_dir)
            ui.note("stopped the lab the set started")
    ui.console.print(_table(record["runs"]))
    ui.console.print(f"set [bold]{set_dir.name}[/]: {set_dir}\ncompare it with another set of the same plan and "
                     f"seed: chaoslab compare {set_dir} OTHER_SET_DIR", highlight=False)
    if "interrupted" in statuses:
        return INTERRUPTED
    if "failed" in statuses:
        return FAILED
    return RUN_FAILED if "inconclusive" in statuses else 0
