"""Traces and logs in native mode, where no Jaeger runs: every replica writes its spans as JSON lines
(services/kit/tracing.py) and its log lines as JSON; this module finds one request's trace and log lines
across every service and draws the trace as a waterfall in the terminal."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

# The marker every span line and every log line with a trace carries; a cheap substring test skips
# the JSON parse of every other line.
_TRACE_KEY = '"trace_id":'


def _json_lines(path: Path, needle: str | None = None) -> Iterator[dict[str, Any]]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        for line in handle:
            if needle is not None and needle not in line:
                continue
            if not line.startswith("{"):
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line cut by a crash or a rotation


def spans_in(spans_dir: Path, pattern: str = "*.jsonl", needle: str = _TRACE_KEY) -> Iterator[dict[str, Any]]:
    """Every span in the span files that match `pattern` (one per replica: `gateway-*.jsonl` for the gateway's),
    reading only the lines that contain `needle`."""
    for path in sorted(spans_dir.glob(pattern)):
        yield from _json_lines(path, needle)


def spans_of(spans_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    return sorted(spans_in(spans_dir, needle=f'"trace_id":"{trace_id}"'), key=lambda s: s["start_ns"])


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root: str
    services: list[str]
    spans: int
    start_ns: int
    duration_ms: float
    errors: int


def summarize(spans_dir: Path, *, since_s: float | None = None) -> list[TraceSummary]:
    """One summary per trace whose spans started within the last `since_s` seconds (all when None)."""
    floor = (time.time() - since_s) * 1e9 if since_s else 0
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans_in(spans_dir):
        if span.get("start_ns", 0) >= floor:
            by_trace[span["trace_id"]].append(span)
    summaries = []
    for trace_id, spans in by_trace.items():
        start = min(s["start_ns"] for s in spans)
        end = max(s["end_ns"] or s["start_ns"] for s in spans)
        roots = [s for s in spans if s["parent_id"] is None] or sorted(spans, key=lambda s: s["start_ns"])
        summaries.append(TraceSummary(
            trace_id=trace_id,
            root=f'{roots[0]["service"]}: {roots[0]["name"]}',
            services=sorted({s["service"] for s in spans if s.get("service")}),
            spans=len(spans),
            start_ns=start,
            duration_ms=(end - start) / 1e6,
            errors=sum(1 for s in spans if s.get("status") == "error"),
        ))
    return summaries


def select(summaries: list[TraceSummary], *, slowest: int | None = None, errors: bool = False,
           limit: int = 20) -> list[TraceSummary]:
    chosen = [s for s in summaries if s.errors] if errors else list(summaries)
    if slowest:
        return sorted(chosen, key=lambda s: s.duration_ms, reverse=True)[:slowest]
    return sorted(chosen, key=lambda s: s.start_ns, reverse=True)[:limit]


def _ordered_tree(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Spans in depth-first order with their depth; a span whose parent is missing starts a new root."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children[parent].append(span)
    ordered: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            ordered.append((depth, span))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return ordered


def waterfall(spans: list[dict[str, Any]], *, width: int = 24) -> Table:
    """A rich table: one row per span, indented by depth, with a bar placed on the trace's timeline."""
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] or s["start_ns"] for s in spans)
    total = max(end - start, 1)
    table = Table(title=f"trace {spans[0]['trace_id']}  ({total / 1e6:.1f} ms, {len(spans)} spans)",
                  show_lines=False, expand=False)
    table.add_column("replica", style="cyan", no_wrap=True, min_width=15)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=56)
    table.add_column("ms", justify="right", no_wrap=True, min_width=6)
    table.add_column("timeline", no_wrap=True, min_width=width, max_width=width)
    for depth, span in _ordered_tree(spans):
        s_end = span["end_ns"] or span["start_ns"]
        offset = int((span["start_ns"] - start) / total * width)
        length = max(1, int((s_end - span["start_ns"]) / total * width))
        failed = span.get("status") == "error"
        bar = Text(" " * offset + "█" * min(length, width - offset), style="red" if failed else "green")
        name = Text("  " * depth + span["name"], style="bold red" if failed else "")
        if failed and span.get("error"):
            name.append(f"  ({span['error']})", style="red")
        table.add_row(str(span.get("replica") or span.get("service")), name,
                      f"{(s_end - span['start_ns']) / 1e6:.1f}", bar)
    return table


def log_lines_of(logs_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    """Every JSON log line of every replica that carries this trace id, in time order."""
    needle = f'"trace_id": "{trace_id}"'
    lines = [line for path in sorted(logs_dir.glob("*.log")) for line in _json_lines(path, needle)]
    return sorted(lines, key=lambda line: str(line.get("time", "")))
