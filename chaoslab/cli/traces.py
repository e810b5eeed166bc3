"""`chaoslab trace`, `chaoslab traces` and `chaoslab logs --trace`: traces and logs in native mode."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chaoslab.cli.console import err
from chaoslab.cli.console import wide as out
from chaoslab.cli.options import STATE_DIR, AsJson, StateDir
from chaoslab.lab.paths import LabPaths
from chaoslab.observability.traces import log_lines_of, select, spans_of, summarize, waterfall

app = typer.Typer()


def _check_trace_id(trace_id: str) -> str:
    trace_id = trace_id.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        err.print(f"not a trace id: {trace_id!r} (32 hex digits, as in a log line's trace_id)")
        raise typer.Exit(2)
    return trace_id


def print_trace_logs(state_dir: Path, trace_id: str) -> int:
    """Print one request's log lines from every replica in time order; the exit code (1 when none)."""
    trace_id = _check_trace_id(trace_id)
    lines = log_lines_of(LabPaths.of(state_dir).logs, trace_id)
    if not lines:
        err.print(f"no log line carries trace {trace_id} in {LabPaths.of(state_dir).logs}")
        return 1
    for line in lines:
        rest = {k: v for k, v in line.items()
                if k not in ("time", "level", "service", "replica", "message", "trace_id", "span_id")}
        out.print(f"[dim]{line.get('time', '')}[/] [cyan]{line.get('replica', '?'):<16}[/] "
                  f"{line.get('level', ''):<7} {line.get('message', '')} [dim]{json.dumps(rest)}[/]",
                  highlight=False, soft_wrap=True)
    return 0


@app.command(epilog="Examples:\n\n"
             "  chaoslab trace 4bf92f3577b34da6a3ce929d0e0e4736\n\n"
             "  chaoslab trace $(chaoslab traces --slowest 1 --ids)\n\n"
             "Spans come from STATE/spans/<replica>.jsonl (native mode keeps them there when no OTLP "
             "endpoint is set).")
def trace(
    trace_id: Annotated[str, typer.Argument(metavar="TRACE_ID", help="32 hex digits.")],
    state_dir: StateDir = STATE_DIR,
    as_json: AsJson = False,
) -> None:
    """Show one request as a waterfall across services: spans, durations, errors."""
    trace_id = _check_trace_id(trace_id)
    spans = spans_of(LabPaths.of(state_dir).spans, trace_id)
    if not spans:
        err.print(f"no span of trace {trace_id} in {LabPaths.of(state_dir).spans}: spans are written about a "
                  "second after a request ends, and sampling (OTEL_TRACES_SAMPLER_ARG, TRACES_PER_SECOND) may "
                  f"have left it unrecorded; `chaoslab logs --trace {trace_id}` still shows its log lines")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(spans, indent=2))
        return
    out.print(waterfall(spans))

@app.command(epilog="Examples:\n\n"
             "  chaoslab traces                       (the 20 newest)\n\n"
             "  chaoslab traces --slowest 5 --since 300\n\n"
             "  chaoslab traces --errors")
def traces(
    state_dir: StateDir = STATE_DIR,
    slowest: Annotated[int | None, typer.Option(help="The N slowest traces.", min=1)] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only traces with a failed span.")] = False,
    since: Annotated[float, typer.Option(help="Only traces from the last SECONDS.", min=1)] = 900,
    limit: Annotated[int, typer.Option(help="At most this many (without --slowest).", min=1)] = 20,
    ids: Annotated[bool, typer.Option("--ids", help="Print only the trace ids, one a line.")] = False,
    as_json: AsJson = False,
) -> None:
    """List trace ids of a time window: the newest, the slowest, or those with errors."""
    chosen = select(summarize(LabPaths.of(state_dir).spans, since_s=since), slowest=slowest, errors=errors,
                    limit=limit)
    if as_json:
        print(json.dumps([dataclasses.asdict(s) for s in chosen], indent=2))
        return
    if ids:
        for summary in chosen:
            print(summary.trace_id)
        return
    if not chosen:
        out.print("no trace in that window")
        return
    table = Table("trace id", "started", "ms", "spans", "errors", "root", "services")
    for s in chosen:
        started = dt.datetime.fromtimestamp(s.start_ns / 1e9).strftime("%H:%M:%S.%f")[:-3]
        table.add_row(s.trace_id, started, f"{s.duration_ms:.1f}", str(s.spans),
                      f"[red]{s.errors}[/]" if s.errors else "0", s.root, ",".join(s.services))
    out.print(table)
