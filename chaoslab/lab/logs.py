"""Reading a lab's logs: STATE/logs/<program>.log, by program or by service (all its replicas)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from chaoslab.errors import LabError
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.programs import INFRASTRUCTURE
from chaoslab.lab.spec import LabSpec

FOLLOW_POLL_S = 0.25


def log_files(spec: LabSpec, name: str) -> list[tuple[str, Path]]:
    """(label, path) of the logs of a service (every replica), a replica, an infrastructure program or
    supervisord itself."""
    paths = spec.paths
    if name in SERVICES:
        names = spec.replica_names(name)
        if not names:
            raise LabError(f"{name} has no replicas in this lab", hint=f"chaoslab scale {name}=1")
    else:
        known = {n for s in SERVICES for n in spec.replica_names(s)} | set(INFRASTRUCTURE) | {"supervisord"}
        if name not in known and not paths.log_file(name).exists():
            raise LabError(f"no program or service named {name!r}",
                           hint="one of: " + ", ".join([*SERVICES, *sorted(known)]))
        names = [name]
    return [(n, paths.log_file(n)) for n in names]


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a file (reads from the end; logs can be large)."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as src:
            src.seek(0, 2)
            size = src.tell()
            block, data = 64 * 1024, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                src.seek(size)
                data = src.read(step) + data
    except FileNotFoundError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


def follow(files: list[tuple[str, Path]], stop_after_s: float | None = None) -> Iterator[tuple[str, str]]:
    """(label, line) of lines appended to the files from the call on; survives rotation and late creation."""
    positions = {path: (path.stat().st_size if path.exists() else 0) for _, path in files}
    return _follow(files, positions, stop_after_s)


def _follow(files: list[tuple[str, Path]], positions: dict[Path, int],
            stop_after_s: float | None) -> Iterator[tuple[str, str]]:
    partial: dict[Path, str] = {}
    started = time.monotonic()
    while stop_after_s is None or time.monotonic() - started < stop_after_s:
        quiet = True
        for label, path in files:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < positions[path]:  # rotated or truncated
                positions[path] = 0
            if size == positions[path]:
                continue
            with open(path, "rb") as src:
                src.seek(positions[path])
                chunk = src.read()
            positions[path] += len(chunk)
            text = partial.pop(path, "") + chunk.decode(errors="replace")
            *complete, rest = text.split("\n")
            if rest:
                partial[path] = rest
            for line in complete:
                quiet = False
                yield label, line
        if quiet:
            time.sleep(FOLLOW_POLL_S)
