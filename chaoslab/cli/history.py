"""`chaoslab history`: the runs recorded in a lab's history (chaoslab.history), the trend of every figure, and
the score as a small chart in the terminal."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.bar import Bar
from rich.markup import escape
from rich.table import Table

from chaoslab.cli.console import errors, fail, out
from chaoslab.cli.options import STATE_DIR, AsJson, StateDir
from chaoslab.history.chart import sparkline
from chaoslab.history.figures import FIGURES, TRENDED, fmt
from chaoslab.history.store import KINDS, History, RunRecord

app = typer.Typer()

STATUS_STYLE = {"passed": "green", "failed": "bold red", "inconclusive": "yellow", "interrupted": "red"}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _runs_table(runs: list[RunRecord]) -> Table:
    table = Table(title="runs (oldest first)", title_justify="left")
    for column in ("#", "when (UTC)", "kind", "name", "commit", "seed", "set", "status", "score",
                   "detect", "recover", "errors", "p99", "budget"):
        table.add_column(column, justify="right" if column in ("#", "score", "seed", "detect", "recover", "errors",
                                                                "p99", "budget") else "left")
    for r in runs:
        set_text = f"{r.set_id} [{r.repetition}]" if r.set_id else ""
        commit = (r.commit or "?")[:10] + ("+" if r.dirty else "")
        table.add_row(str(r.id), _when(r.started), r.kind, escape(r.name), commit,
                      "" if r.seed is None else str(r.seed), escape(set_text),
                      f"[{STATUS_STYLE.get(r.status, 'white')}]{r.status}[/]",
                      "-" if r.score is None else f"{r.score:.1f}",
                      *(fmt(f, r.figure(f)) for f in TRENDED[1:]))
    return table


def _trend_table(runs: list[RunRecord]) -> Table:
    table = Table(title="trend of each figure over these runs (run-level: the worst experiment; the budget summed)",
                  title_justify="left")
    for column in ("figure", "chart (oldest → latest)", "first", "latest", "median", "best", "worst", "runs"):
        table.add_column(column, justify="left" if column in ("figure", "chart (oldest → latest)") else "right")
    for name in TRENDED:
        figure = FIGURES[name]
        values = [r.figure(name) for r in runs]
        known = [v for v in values if v is not None]
        if not known:
            continue
        ordered = sorted(known)
        median = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1]
                                                                      + ordered[len(ordered) // 2]) / 2
        best, worst = (min(known), max(known)) if figure.lower_is_better else (max(known), min(known))
        table.add_row(f"{figure.label} ({'lower' if figure.lower_is_better else 'higher'} is better)",
                      f"[cyan]{sparkline(values)}[/]", fmt(name, known[0]), fmt(name, known[-1]), fmt(name, median),
                      fmt(name, best), fmt(name, worst), str(len(known)))
    return table


def _score_chart(runs: list[RunRecord]) -> Table:
    table = Table(title="score per run", title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column("run", justify="right")
    table.add_column("bar", width=42)
    table.add_column("score", justify="right")
    for r in runs:
        if r.score is None:
            continue
        color = "green" if r.score >= 90 else "yellow" if r.score >= 60 else "red"
        table.add_row(f"#{r.id} {escape(r.name)}", Bar(100, 0, r.score, width=40, color=color), f"{r.score:.1f}")
    return table


@app.command("history", epilog="Examples:\n\n  chaoslab history\n\n  chaoslab history --plan quick --last 10\n\n"
             "  chaoslab history --kind experiment --json\n\n  chaoslab history --set 20261205T101500Z-set-tiny\n\n"
             "Figures: time-to-detect and time-to-recover (the slowest experiment's), the clients' error ratio and "
             "p99 (the worst), the error budget spent (summed over the run), the resilience score. The history is "
             "STATE/history.sqlite (SQLite: `sqlite3 .chaoslab/history.sqlite .schema`).")
def history(
    state_dir: StateDir = STATE_DIR,
    plan: Annotated[str | None, typer.Option("--plan", "-p", help="Only runs of this plan (or experiment, or load "
                                                                  "scenario) name.")] = None,
    kind: Annotated[str | None, typer.Option(help=f"Only runs of this kind: {', '.join(KINDS)}.")] = None,
    last: Annotated[int, typer.Option("--last", "-n", help="Show the latest N runs.")] = 20,
    set_id: Annotated[str | None, typer.Option("--set", help="Only the repetitions of this set "
                                                             "(gameday --repeat prints its id).")] = None,
    commit: Annotated[str | None, typer.Option(help="Only runs of this commit (a prefix).")] = None,
    as_json: AsJson = False,
) -> None:
    """The runs recorded in the lab's history (every gameday, `chaos run` and `load`), with the trend of each
    figure and the resilience score as a chart."""
    if kind is not None and kind not in KINDS:
        raise fail(f"unknown --kind {kind!r}: one of {', '.join(KINDS)}", code=2)
    if last < 1:
        raise fail(f"--last must be at least 1, not {last}", code=2)
    with errors():
        runs = History.of(state_dir).runs(kind=kind, name=plan, set_id=set_id, commit=commit, last=last,
                                          with_verdicts=as_json)
    if as_json:
        sys.stdout.write(json.dumps([r.to_json(with_verdicts=True) for r in runs], indent=2, default=str) + "\n")
        return
    if not runs:
        out.print("no recorded run matches" + (f" (plan {plan})" if plan else ""), highlight=False)
        return
    out.print(_runs_table(runs))
    out.print(_trend_table(runs))
    out.print(_score_chart(runs))
