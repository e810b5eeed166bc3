"""Where the load tests are, and run directories."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
RUNS_DIR = Path("runs")


def use_loadtests() -> None:
    """Make the `loadtests` package importable: it sits beside the chaoslab package in the checkout and is not
    installed (compose and k8s copy the folder on its own). Appended, so nothing of the environment is shadowed."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))


def new_run_dir(kind: str, name: str, parent: Path = RUNS_DIR) -> Path:
    """runs/<timestamp>-<kind>-<name>/, created; a suffix keeps two runs in the same second apart."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = parent / f"{stamp}-{kind}-{name}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path
