"""When the last fault went in, for the probes that measure from it (time to detect, notifications since).

Chaos Toolkit gives activities no way to hand values to each other; every activity of one run lives in one
`chaos run` process, so a module-level record is enough (and probes fall back to their own start without it).
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_marks: dict[str, float] = {}


def mark(name: str = "fault", at: float | None = None) -> float:
    with _lock:
        _marks[name] = time.time() if at is None else at
        return _marks[name]


def last(name: str = "fault") -> float | None:
    with _lock:
        return _marks.get(name)


def since(value: float | str | None, default: float) -> float:
    """A `since` argument: a unix time, the name of a mark ("fault"), or None for the last fault (else default)."""
    if value is None:
        return last("fault") or default
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return last(value) or default
