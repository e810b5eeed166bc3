"""The one exception the lab raises for expected failures: the CLI prints it without a traceback."""

from __future__ import annotations


class LabError(Exception):
    """An expected failure with a message for people, an optional hint and optional details (a log tail)."""

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        if self.details:
            parts.append(self.details)
        return "\n".join(parts)
