"""One command at a time may change a lab (up, scale, down): a lock file in the state dir."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from chaoslab.errors import LabError
from chaoslab.lab.paths import LabPaths

WAIT_S = 120.0


@contextmanager
def lab_lock(paths: LabPaths, wait_s: float = WAIT_S, *, create: bool = True) -> Iterator[None]:
    """Hold the state dir's lock (waiting up to wait_s for another command); without `create`, a state dir
    that does not exist is not made for the lock's sake (there is nothing to guard)."""
    if not create and not paths.state.is_dir():
        yield
        return
    paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(paths.state / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"another chaoslab command has been changing the lab in {paths.state} for "
                                   f"{wait_s:.0f} s", hint="wait for it to finish, or see: chaoslab status") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
