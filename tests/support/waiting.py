"""Waiting for something to become true in a test, one way everywhere: a timeout reads the same and says what
was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 0.5,
               what: str | None = None) -> Any:
    """The first truthy value of check(), or fail after timeout_s (the machine may be busy: be generous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, \
            f"not true within {timeout_s} s: {what or check.__doc__ or check} (last value: {value!r})"
        time.sleep(every_s)
