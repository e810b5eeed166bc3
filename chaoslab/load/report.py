"""The end of a load run on the terminal: per-request table, per-stage table, threshold checks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def requests_table(summary: dict[str, Any]) -> Table:
    table = Table(title="requests", title_justify="left")
    for column in ("method", "name"):
        table.add_column(column)
    for column in ("requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    rows = [*summary.get("entries", []), summary["total"]]
    for row in rows:
        failures = int(row["failures"])
        table.add_row(
            row.get("method", ""), escape(row["name"]), str(row["requests"]),
            f"[red]{failures}[/]" if failures else "0", f"{row['rps']:.2f}",
            _ms(row.get("p50_ms")), _ms(row.get("p95_ms")), _ms(row.get("p99_ms")), _ms(row.get("max_ms")),
            end_section=row is rows[-2] if len(rows) > 1 else False,
        )
    return table


def steps_table(steps: list[dict[str, Any]]) -> Table:
    table = Table(title="stages (measured after each stage settled)", title_justify="left")
    table.add_column("stage")
    for column in ("users", "seconds", "req/s", "ok req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for step in steps:
        total = step["total"]
        table.add_row(escape(step["label"]), str(step.get("users_running", step["users"])), f"{step['seconds']:.0f}",
                      f"{total['rps']:.2f}", f"{total['ok_rps']:.2f}", _ms(total["p50_ms"]), _ms(total["p95_ms"]),
                      _ms(total["p99_ms"]))
    return table


def checks_table(checks: list[dict[str, Any]]) -> Table:
    """Checks that were evaluated; those skipped for too few samples are listed in the caption."""
    skipped = sorted({c["what"].split(" ", 1)[1] for c in checks if c.get("skipped")})
    caption = f"not enough samples for a percentile: {escape(', '.join(skipped))}" if skipped else None
    table = Table(title="thresholds", title_justify="left", caption=caption, caption_justify="left")
    for column in ("check", "limit", "observed", ""):
        table.add_column(column)
    for check in checks:
        if not check.get("skipped"):
            table.add_row(escape(check["what"]), check["limit"], escape(check["observed"]),
                          "[green]ok[/]" if check["ok"] else "[bold red]FAIL[/]")
    return table


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    console.print(requests_table(summary))
    if len(summary.get("steps", [])) > 1:
        console.print(steps_table(summary["steps"]))
    errors = summary.get("errors") or []
    if errors:
        console.print("[bold]most frequent failures[/]")
        for e in errors[:5]:
            console.print(f"  {e['occurrences']:>6}  {e['method']} {e['name']}: {e['error']}", highlight=False,
                          markup=False)
    if summary.get("checks") is not None:
        if summary.get("judged_on"):
            console.print(f"thresholds judged on {summary['judged_on']} (the sign-ups before it left out)",
                          highlight=False, markup=False)
        console.print(checks_table(summary["checks"]))


def failed_checks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in summary.get("checks") or [] if not c["ok"]]
