"""`chaoslab compare BASE CANDIDATE`: two sets of runs, figure by figure, with a bootstrap interval of the
difference of medians; exit 1 only for a significant regression beyond the tolerance (chaoslab.compare)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from chaoslab.cli.console import err, errors, fail, out
from chaoslab.cli.options import STATE_DIR, AsJson, StateDir
from chaoslab.errors import FAILED, USAGE

app = typer.Typer()

VERDICT_STYLE = {"regression": "bold red", "worse, within tolerance": "yellow", "improvement": "bold green",
                 "better, within tolerance": "green", "no significant change": "white", "too few runs": "dim"}


def _table(comparison: object) -> Table:
    from chaoslab.compare.judge import Comparison
    from chaoslab.history.figures import RUN, fmt

    assert isinstance(comparison, Comparison)
    table = Table(title=f"candidate - base, {comparison.confidence:.0%} bootstrap interval of the difference of "
                        f"medians ({comparison.resamples} resamples)", title_justify="left")
    for column in ("suite", "figure", "base median", "candidate median", "difference", "interval", "tolerance",
                   "runs", "verdict"):
        table.add_column(column, justify="right" if column not in ("suite", "figure", "verdict") else "left",
                         overflow="fold")
    for f in comparison.figures:
        interval = "-" if f.interval is None else f"[{fmt(f.figure, f.interval.low)}, {fmt(f.figure, f.interval.high)}]"
        diff = "-" if f.interval is None else fmt(f.figure, f.interval.estimate)
        table.add_row("(run)" if f.suite == RUN else escape(f.suite), f.label, fmt(f.figure, f.base_median),
                      fmt(f.figure, f.candidate_median), diff, interval, fmt(f.figure, f.tolerance),
                      f"{len(f.base)}/{len(f.candidate)}" + (f" ({f.censored} censored)" if f.censored else ""),
                      f"[{VERDICT_STYLE.get(f.verdict, 'white')}]{f.verdict}[/]")
    return table


@app.command("compare", epilog="Examples:\n\n"
             "  chaoslab gameday --plan quick --repeat 5 --seed 42   (on each commit; prints its set directory)\n\n"
             "  chaoslab compare runs/base-set runs/candidate-set --junit compare.xml\n\n"
             "  chaoslab compare 20261205T101500Z-set-quick 20261205T113000Z-set-quick   (set ids in the history)\n\n"
             "  chaoslab compare runs/base runs/candidate --tolerance client_p99_s=0.25 --tolerance "
             "time_to_recover_s=20%\n\n"
             "Figures: time_to_detect_s, time_to_recover_s, client_error_ratio, client_p99_s, error_budget_spent, "
             "score. Exit code: 0 no regression, 1 a significant regression beyond its tolerance (named), 2 the "
             "sets cannot be compared (not found, no figure in common, a bad option). docs/resilience.md explains "
             "the statistics and how to run it in CI on two commits.")
def compare(
    base: Annotated[str, typer.Argument(help="The base set: a folder of gameday runs (a `gameday --repeat` set "
                                             "directory), or a set id or commit in the history of --state-dir.")],
    candidate: Annotated[str, typer.Argument(help="The candidate set, given the same way.")],
    state_dir: StateDir = STATE_DIR,
    plan: Annotated[str | None, typer.Option("--plan", "-p", help="Only runs of this plan.")] = None,
    tolerance: Annotated[list[str] | None, typer.Option(
        "--tolerance", "-t", metavar="FIGURE=VALUE|N%",
        help="A figure's tolerance: absolute in its unit (seconds, a ratio, points) or N% of the base's median. "
             "Defaults: time_to_detect_s and time_to_recover_s max(2 s, 50%), client_error_ratio max(0.01, 50%), "
             "client_p99_s max(0.1 s, 50%), error_budget_spent max(0.02, 50%), score 5 points.")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence of the interval.")] = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap (the same seed, the same intervals).")]
    = 0,
    min_runs: Annotated[int, typer.Option(help="Fewer runs than this on a side: the figure is not judged.")] = 3,
    run_only: Annotated[bool, typer.Option("--run-only", help="Only the run-level figures (not each experiment's "
                                                              "or fault window's).")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here (one test case per figure; a "
                                                    "regression is a failure).")] = None,
    as_json: AsJson = False,
) -> None:
    """Compare two sets of runs of a plan (N seeded repetitions each, e.g. of two commits): for every figure both
    medians and a bootstrap confidence interval of their difference. A regression is a difference whose whole
    interval lies beyond the figure's tolerance in the worse direction; only that fails the comparison."""
    from chaoslab.compare import judge, sets
    from chaoslab.compare import junit as junit_xml

    if not 0 < confidence < 1:
        raise fail(f"--confidence must be between 0 and 1, not {confidence}", code=USAGE)
    if resamples < 100:
        raise fail(f"--resamples must be at least 100, not {resamples}", code=USAGE)
    if min_runs < 2:
        raise fail(f"--min-runs must be at least 2, not {min_runs}", code=USAGE)
    with errors():
        tolerances = judge.parse_tolerances(tolerance or [])
        base_set = sets.load(base, state_dir, plan)
        candidate_set = sets.load(candidate, state_dir, plan)
        result = judge.compare(base_set, candidate_set, tolerances=tolerances, confidence=confidence,
                               resamples=resamples, seed=seed, min_runs=min_runs, run_only=run_only)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml.render(result))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        for name, s in (("base", base_set), ("candidate", candidate_set)):
            commits = ", ".join((c or "?")[:10] for c in s.distinct("commit"))
            out.print(f"{name}: {escape(s.spec)}: {len(s.runs)} run(s) of {', '.join(s.distinct('plan'))}, "
                      f"commit {commits}, seed {', '.join(str(x) for x in s.distinct('seed'))}", highlight=False)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        out.print(_table(result))
    judged = result.judged
    if not judged:
        err.print(f"[bold red]error:[/] no figure has {min_runs} runs on both sides: nothing was judged "
                  "(gameday --repeat N makes N runs)", highlight=False)
        raise typer.Exit(USAGE)
    if result.regressions:
        named = ", ".join(f.id for f in result.regressions)
        err.print(f"[bold red]REGRESSION[/]: {escape(named)}", highlight=False)
        raise typer.Exit(FAILED)
    if not as_json:
        out.print(f"[bold green]no significant regression[/] beyond tolerance in {len(judged)} figure(s)",
                  highlight=False)
