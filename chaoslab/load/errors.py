"""The one exception of the load commands: the CLI prints it without a traceback and exits with its code."""

from __future__ import annotations

USAGE = 2  # a bad command line (bad numbers, an unknown scenario, no lab and no --host)
RUN_FAILED = 3  # Locust could not run or ended without a verdict
THRESHOLDS_FAILED = 1


class LoadError(Exception):
    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None,
                 exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        self.exit_code = exit_code
