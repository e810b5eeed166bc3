"""The lab's lease: one command at a time may change what a lab is doing (inject faults, scale, change the
environment, run experiments, gamedays, coverage or random chaos). Read-only commands never need it.

Before it, nothing stopped a gameday from starting while a `chaoslab chaos run` held the lab: the gameday restarted
the service the run had just stopped, the run failed for a reason it did not cause, and the gameday counted the
run's alert as its own. Now the second command waits (`--wait`) or is refused with the holder's name.

How: an exclusive flock on STATE/.lease, held for the whole command, plus STATE/lease.json saying who holds it
(command, pid, since). The kernel drops the flock when its holder dies, however it dies, so a crashed holder's
lease is free again at once and its stale lease.json is simply overwritten: nothing to recover by hand, and no
guessing from pids that may have been reused. The lease is re-entrant within one process (a gameday runs
experiments through the same code as `chaos run`), and `chaos run`'s own child processes (the Chaos Toolkit
extension) act under their parent's lease.

This is not the state dir's lock (chaoslab.lab.lock), which `up`, `scale` and `down` hold for the seconds they
take to rewrite the lab's files: the lease covers minutes of experiments.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from chaoslab.errors import LabError
from chaoslab.lab.paths import LabPaths

BUSY = 4  # the exit code of a command refused because another one holds the lease
POLL_S = 0.5
# Set for the processes a lease holder starts (chaos run, Locust), so that chaoslab code in them knows it acts
# under the lease of its parent and does not ask for it again.
HOLDER_ENV = "CHAOSLAB_LEASE_HOLDER"


@dataclass(frozen=True)
class Holder:
    command: str
    pid: int
    since: float

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%H:%M:%S UTC")
        return f"`{self.command}` (pid {self.pid}, since {since}, {_ago(self.since)})"

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "pid": self.pid, "since": self.since}


class LabBusy(LabError):
    """Another command holds the lab's lease."""

    exit_code = BUSY

    def __init__(self, state: Path, holder: Holder | None, waited_s: float) -> None:
        who = holder.describe() if holder else "another chaoslab command"
        waited = f" (waited {waited_s:.0f} s)" if waited_s >= 1 else ""
        super().__init__(f"the lab in {state} is busy: {who} is changing it{waited}",
                         hint="wait for it to finish, run this command with --wait SECONDS, or stop the holder "
                              "(Ctrl-C lets it roll back its faults); chaoslab status shows the lease")
        self.holder = holder


# state dir -> (open lock file, depth): the leases this process holds
_held: dict[Path, tuple[IO[str], int]] = {}


def _ago(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    return f"{seconds // 60} min {seconds % 60} s ago" if seconds >= 60 else f"{seconds} s ago"


def command_line() -> str:
    """This process's command as a user typed it (chaoslab gameday --plan quick)."""
    argv = list(sys.argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv) or "chaoslab"


def _lease_file(paths: LabPaths) -> Path:
    return paths.state / ".lease"


def _holder_file(paths: LabPaths) -> Path:
    return paths.state / "lease.json"


def current(state_dir: str | os.PathLike[str]) -> Holder | None:
    """Who holds the lab's lease now; None when nobody does (a stale lease.json of a crashed holder included)."""
    paths = LabPaths.of(state_dir)
    if paths.state in _held:
        return _read_holder(paths)
    try:
        handle = open(_lease_file(paths))  # noqa: SIM115 - held across the probe below
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(paths) or Holder("another chaoslab command", 0, time.time())
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _read_holder(paths: LabPaths) -> Holder | None:
    try:
        data = json.loads(_holder_file(paths).read_text())
        return Holder(str(data["command"]), int(data["pid"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_holder(paths: LabPaths, holder: Holder) -> None:
    target = _holder_file(paths)
    tmp = target.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(holder.to_json(), handle)
    tmp.replace(target)


@contextmanager
def lease(state_dir: str | os.PathLike[str], *, wait_s: float = 0.0, command: str | None = None,
          on_wait: Any = None) -> Iterator[Holder]:
    """Hold the lab's lease for the block. Another holder: wait up to `wait_s` (calling `on_wait(holder)` once),
    then LabBusy naming it. Re-entrant in one process; a no-op in a child of a holder (HOLDER_ENV)."""
    paths = LabPaths.of(state_dir)
    if paths.state in _held:
        handle, depth = _held[paths.state]
        _held[paths.state] = (handle, depth + 1)
        try:
            yield _read_holder(paths) or Holder(command or command_line(), os.getpid(), time.time())
        finally:
            handle, depth = _held[paths.state]
            _held[paths.state] = (handle, depth - 1)
        return
    if os.environ.get(HOLDER_ENV) == str(paths.state):
        yield Holder(command or command_line(), os.getppid(), time.time())
        return
    paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)  # a gameday may take it before its lab is up
    handle = open(_lease_file(paths), "a+")  # noqa: SIM115 - kept open for as long as the lease is held
    os.chmod(_lease_file(paths), 0o600)
    started = time.monotonic()
    told = False
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise LabBusy(paths.state, _read_holder(paths), waited) from None
                if not told and on_wait is not None:
                    on_wait(_read_holder(paths))
                    told = True
                time.sleep(POLL_S)
        holder = Holder(command or command_line(), os.getpid(), time.time())
        _write_holder(paths, holder)
        _held[paths.state] = (handle, 1)
        os.environ[HOLDER_ENV] = str(paths.state)
        try:
            yield holder
        finally:
            del _held[paths.state]
            os.environ.pop(HOLDER_ENV, None)
            _holder_file(paths).unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
