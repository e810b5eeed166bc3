"""What a person watching the gameday sees: its phases, the live activity of the running experiment, a verdict
table after each experiment and the whole table at the end. On a terminal a spinner shows the activity; in a
CI log each activity is one plain line, so the log stays readable."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaoslab.gameday.verdicts import Verdict

# chaostoolkit's log file (flushed at every line, unlike chaos.out), colored:
# "\x1b[32m[2026-11-24 07:20:28 INFO] [activity:232] Action: stop-every-payments-replica"
_LOG_LINE = re.compile(r"\[[^\]]* (?:INFO|WARNING|ERROR|CRITICAL)\] \[[^\]]*\] (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
POLL_S = 0.5


def measured_text(v: Verdict) -> str:
    if v.measured is None:
        return "-"
    if v.unit == "ratio":
        return f"{v.measured:.2%}"
    if v.unit == "s":
        return f"{v.measured:.1f} s"
    return f"{v.measured:g}"


def bound_text(v: Verdict) -> str:
    if v.bound is None:
        return ""
    sign = "≥" if v.at_least else "≤"
    return f"{sign} {v.bound:.2%}" if v.unit == "ratio" else f"{sign} {v.bound:g} s" if v.unit == "s" \
        else f"{sign} {v.bound:g}"


def verdict_table(verdicts: list[Verdict], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("", "suite", "verdict", "measured", "bound", "detail"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        mark = "[yellow]?[/]" if v.inconclusive else "[green]✔[/]" if v.passed else "[bold red]✘[/]"
        detail = v.detail + (f" [inconclusive: {v.inconclusive}]" if v.inconclusive else "")
        table.add_row(mark, escape(v.suite), escape(v.name), measured_text(v), bound_text(v), escape(detail))
    return table


class UI:
    def __init__(self, console: Console | None = None) -> None:
        # Piped output (CI logs, tests) is not squeezed into 80 columns: the tables must stay readable there.
        self.console = console or Console(width=None if sys.stdout.isatty() else 170)
        self.started = time.monotonic()

    def _clock(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"[dim]{elapsed // 60:2d}:{elapsed % 60:02d}[/]"

    def phase(self, text: str) -> None:
        self.console.print(f"{self._clock()} [bold cyan]▶[/] {text}", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"{self._clock()}   {text}", highlight=False)

    def wait(self, seconds: float, what: str) -> None:
        if seconds <= 0:
            return
        with self.console.status(f"{what} ({seconds:g} s)"):
            time.sleep(seconds)

    @contextmanager
    def watching(self, runs_dir: Path, label: str) -> Iterator[None]:
        """Show the running experiment's current activity, read from its chaos.out as `chaos run` writes it."""
        stop = threading.Event()
        started, since = time.monotonic(), time.time()
        status = self.console.status(label) if self.console.is_terminal else None

        def follow() -> None:
            last = ""
            while not stop.wait(POLL_S):
                line = _last_activity(runs_dir, since)
                elapsed = int(time.monotonic() - started)
                if status is not None:
                    status.update(f"{escape(label)} [dim]{elapsed} s[/] {escape(line)}")
                elif line and line != last:
                    self.console.print(f"{self._clock()}     {escape(line)}", highlight=False)
                last = line

        thread = threading.Thread(target=follow, daemon=True)
        if status is not None:
            status.start()
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(2)
            if status is not None:
                status.stop()

    def verdicts(self, verdicts: list[Verdict], title: str) -> None:
        self.console.print(verdict_table(verdicts, title))


def _last_activity(runs_dir: Path, since: float) -> str:
    """The last informative line of the newest Chaos Toolkit log under `runs_dir` written after `since`."""
    try:
        logs = sorted((p for p in runs_dir.glob("*/chaostoolkit.log") if p.stat().st_mtime >= since),
                      key=lambda p: p.stat().st_mtime)
        lines = logs[-1].read_text(errors="replace").splitlines() if logs else []
    except OSError:
        return ""
    for line in reversed(lines):
        match = _LOG_LINE.search(_ANSI.sub("", line))
        if match:
            return match.group(1)[:110]
    return ""
