"""Finding and ending every process of a lab.

Every process of a lab carries `CHAOSLAB_LAB=<state dir>` in its environment: supervisord gets it from the lab,
and everything it starts inherits it (the services, RabbitMQ's shell, beam.smp, erl_child_setup, inet_gethost...),
even the processes that put themselves in a session of their own. Reading /proc/<pid>/environ finds them all.
The shared epmd daemon (one per machine, used by every Erlang node) is not the lab's and is left alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from chaoslab.lab.programs import LAB_MARKER

SHARED = frozenset({"epmd"})


def _environ_marker(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{LAB_MARKER}=".encode()
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def lab_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process of the lab in `state_dir` (not this process, not epmd, not zombies)."""
    wanted = str(Path(state_dir).resolve())
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE or proc.info["name"] in SHARED:
            continue
        if _environ_marker(proc.pid) == wanted:
            found.append(proc)
    return found


def describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"  pid {proc.pid}: {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            lines.append(f"  pid {proc.pid}")
    return "\n".join(lines)


def end_processes(procs: list[psutil.Process], grace_s: float = 10.0) -> list[psutil.Process]:
    """SIGTERM, then SIGKILL after `grace_s`; returns the ones still alive after both (should be none)."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(alive, timeout=5.0)
    return alive


def alive(pid: int) -> bool:
    """True when `pid` runs (a zombie does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(alive(p) for p in pids)
