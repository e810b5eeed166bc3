"""What every command prints through and how failures end it, declared once: the consoles, the mapping of
chaoslab's errors to messages and exit codes, and the progress display of long operations."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from chaoslab.errors import INTERRUPTED, ChaoslabError
from chaoslab.lab.lease import Holder

# Piped output (CI logs, tests) is not squeezed into 80 columns: tables must stay readable there.
PIPED_WIDTH = 170
# Trace ids print whole (people copy them) and a waterfall needs room: never narrower than this.
WIDE = 140

out = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)
wide = Console(width=max(Console().width, WIDE))


def report(exc: ChaoslabError) -> None:
    """Print an expected failure: the message, the hint, the details (a log tail), never a traceback."""
    # soft_wrap: no line breaks inserted, so that commands in hints can be copied whole
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
    if exc.details:
        err.print(exc.details, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def errors() -> Iterator[None]:
    """chaoslab's expected failures become their message and their exit code; Ctrl-C exits 130."""
    try:
        yield
    except ChaoslabError as exc:
        report(exc)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        raise typer.Exit(INTERRUPTED) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """A usage problem found by the command itself: the message on stderr, then `raise fail(...)`."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def waiting(holder: Holder | None) -> None:
    """Said once when a command waits for the lab's lease (--wait)."""
    who = holder.describe() if holder else "another chaoslab command"
    err.print(f"[yellow]waiting[/] for the lab's lease, held by {escape(who)}", highlight=False, soft_wrap=True)


def progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


class RichReporter:
    """Shows the lab's long operations (up, scale, env): phases as lines, the readiness wait as a bar."""

    def __init__(self, bar: Progress) -> None:
        self.progress = bar
        self.task = bar.add_task("starting", total=None)

    def phase(self, text: str) -> None:
        self.progress.console.print(f"[cyan]•[/] {text}", highlight=False)
        self.progress.update(self.task, description=text, total=None, completed=0)

    def waiting(self, pending: list[str], done: int, total: int) -> None:
        shown = ", ".join(pending[:4]) + (f" +{len(pending) - 4}" if len(pending) > 4 else "")
        text = f"waiting for {shown}" if pending else "all ready"
        self.progress.update(self.task, description=text, total=total, completed=done)
