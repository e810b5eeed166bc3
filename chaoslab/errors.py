"""chaoslab's one error hierarchy: an expected failure with a message for people, an optional hint (what to do),
optional details (a log tail, a response body) and the exit code a command ends with.

Library code raises these; the CLI (chaoslab.cli.console.errors) prints them without a traceback and exits
with their code; the Chaos Toolkit extension turns them into ActivityFailed for the journal.
"""

from __future__ import annotations

# Exit codes every command shares (a command documents which of them it uses).
OK = 0
FAILED = 1  # the run happened and a verdict, threshold or operation failed
USAGE = 2  # the command line, a plan or a file is not valid; nothing ran
RUN_FAILED = 3  # the tool behind the command (Locust) could not run or gave no verdict
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class ChaoslabError(Exception):
    """An expected failure: `message` says what, `hint` what to do, `details` more (a log tail)."""

    exit_code: int = FAILED

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        if self.details:
            parts.append(self.details)
        return "\n".join(parts)


class LabError(ChaoslabError):
    """The native lab cannot do what was asked (start, scale, find its files); exit 1."""


class LoadError(ChaoslabError):
    """A load run cannot start (a bad command line, no lab: exit 2) or ended without a verdict (exit 3)."""

    exit_code = USAGE


class UsageError(ChaoslabError):
    """What was asked cannot be done as asked (an unknown --var, a function the extension does not have); nothing
    ran. Exit 2."""

    exit_code = USAGE


class DocumentError(ChaoslabError):
    """A file a user wrote (an experiment, a plan) cannot be read, does not parse or is not valid; the message
    names the file and, where it can, the line. Exit 2."""

    exit_code = USAGE


class PlanError(DocumentError):
    """A gameday plan cannot be read or is not valid; the message says where and why. Exit 2."""


class ClientError(ChaoslabError):
    """An external API (Prometheus, the shop, the replicas' admin API, the webhook receiver) did not answer as
    it should; the message names which and why, never a secret."""
