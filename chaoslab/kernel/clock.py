"""One replica's clock, moved or running fast, through libfaketime (Debian's libfaketime).

Every replica of an isolated lab runs with libfaketime preloaded and reads its fake time from a file of its own,
`STATE/clock/<replica>.faketime`, which holds "+0" (the real time) until a fault writes an offset ("+600": ten
minutes ahead) or a rate ("+0 x2": running twice as fast). libfaketime re-reads it every second, so a clock moves
without a restart. Only the wall clock is faked (CLOCK_REALTIME: what token times, Date headers and logs read);
the monotonic clock that timeouts and timers run on is the real one, as with a wrong NTP clock. (libfaketime 0.9.10
breaks Python's time.sleep() with that setting, a known libfaketime bug; the services sleep only through asyncio
and threading, which work.)
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from chaoslab.errors import LabError
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.spec import LabSpec

LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"
NEUTRAL = "+0"
FAKETIME_VARIABLES = ("LD_PRELOAD", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_CACHE_DURATION",
                      "FAKETIME_DONT_FAKE_MONOTONIC", "FAKETIME_DISABLE_SHM", "NO_FAKE_STAT")
_SPEC = re.compile(r"^[+-]\d+(\.\d+)?[smhd]?( x\d+(\.\d+)?)?$")


def library() -> str | None:
    found = sorted(glob.glob(LIBRARY_GLOB))
    return found[0] if found else None


def clock_file(paths: LabPaths, replica: str) -> Path:
    return paths.state / "clock" / f"{replica}.faketime"


def faketime_env(spec: LabSpec, replica: str) -> dict[str, str]:
    """The variables that give a replica its own clock (the file starts neutral)."""
    paths = spec.paths
    lib = library()
    if lib is None:
        raise LabError("libfaketime is not installed: an isolated lab gives every replica a clock of its own",
                       hint="apt-get install libfaketime (or make setup)")
    path = clock_file(paths, replica)
    if not path.exists():
        write(path, NEUTRAL)
    return {
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(path),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DISABLE_SHM": "1",
        "NO_FAKE_STAT": "1",
    }


def write(path: Path, spec: str) -> None:
    if not _SPEC.match(spec):
        raise LabError(f"not a libfaketime offset: {spec!r} (e.g. +600, -30, +0 x2)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(spec + "\n")
    os.replace(tmp, path)


def read(path: Path) -> str:
    try:
        return path.read_text().strip() or NEUTRAL
    except OSError:
        return NEUTRAL


def offset_spec(offset_s: float = 0.0, rate: float | None = None) -> str:
    """libfaketime's relative spec: "+600", "-30.5", "+0 x2"."""
    text = f"{offset_s:+g}"
    if rate is not None and rate != 1:
        text += f" x{rate:g}"
    return text


def skewed(paths: LabPaths) -> dict[str, str]:
    """Replicas whose clock file is not neutral: {replica: spec}."""
    folder = paths.state / "clock"
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.faketime")):
        spec = read(path)
        if spec != NEUTRAL:
            out[path.name.removesuffix(".faketime")] = spec
    return out
