"""The requests behind an experiment's numbers: the slowest and the failed requests while its fault lasted, each
with its trace id, its waterfall (chaoslab.observability.traces, rendered to HTML) and the log lines that carry
its trace id.

Only requests a client sent count: traces whose root is the gateway's server span (its name is a route).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from chaoslab.observability.traces import TraceSummary, log_lines_of, spans_of, summarize, waterfall

MAX_LOG_LINES = 25
WATERFALL_HTML = '<pre class="waterfall">{code}</pre>'
LOG_FIELDS = ("time", "replica", "level", "message")


@dataclass
class TraceEvidence:
    kind: str  # "slowest" or "failed"
    trace_id: str
    root: str
    start: float
    duration_ms: float
    errors: int
    services: list[str]
    waterfall_html: str = ""
    log_lines: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "waterfall_html"}


def client_requests(spans_dir: Path, since: float) -> list[TraceSummary]:
    """Every client request's trace that started after `since` (unix time)."""
    import time

    return [s for s in summarize(spans_dir, since_s=max(1.0, time.time() - since + 1))
            if s.root.startswith("gateway: ") and " /" in s.root]


def pick(summaries: list[TraceSummary], start: float, end: float, slowest: int,
         failed: int) -> list[tuple[str, TraceSummary]]:
    """The `slowest` slowest and the `failed` latest failed requests that started within [start, end]."""
    inside = [s for s in summaries if start <= s.start_ns / 1e9 <= end]
    chosen: list[tuple[str, TraceSummary]] = [
        ("slowest", s) for s in sorted(inside, key=lambda s: s.duration_ms, reverse=True)[:slowest]]
    seen = {s.trace_id for _, s in chosen}
    errors = [s for s in sorted(inside, key=lambda s: s.start_ns) if s.errors and s.trace_id not in seen]
    chosen.extend(("failed", s) for s in errors[:failed])
    return chosen


def render_waterfall(spans: list[dict[str, Any]]) -> str:
    """The terminal waterfall of chaoslab.observability.traces as HTML with inline styles (the report opens offline)."""
    console = Console(record=True, width=130, file=io.StringIO(), color_system="truecolor")
    console.print(waterfall(spans, width=40))
    return console.export_html(inline_styles=True, code_format=WATERFALL_HTML)


def evidence(spans_dir: Path, logs_dir: Path, kind: str, summary: TraceSummary) -> TraceEvidence:
    spans = spans_of(spans_dir, summary.trace_id)
    lines = [{k: line.get(k) for k in LOG_FIELDS} | {"service": line.get("service")}
             for line in log_lines_of(logs_dir, summary.trace_id)[:MAX_LOG_LINES]]
    return TraceEvidence(kind, summary.trace_id, summary.root, summary.start_ns / 1e9,
                         round(summary.duration_ms, 1), summary.errors, summary.services,
                         render_waterfall(spans) if spans else "", lines)
