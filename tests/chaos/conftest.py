"""A lab of the chaos tests' own: three payments replicas (the kill experiment needs them), and faults that stop
services, kill replicas and stop the broker, which the session's shared `lab` must not suffer. One lab for every
chaos test (module scope would start one per file), stopped with `chaoslab down` at the end, which also checks
that no process of it is left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from support.lab import LabStartFailed, release_base_port, replica_args, reserve_base_port, start_lab, stop_lab

START_ATTEMPTS = 2  # a port free when reserved can be taken before the lab binds it (other labs on the machine)


def _start(state_dir: Path) -> tuple[int, dict[str, Any]]:
    for attempt in range(1, START_ATTEMPTS + 1):
        base = reserve_base_port()
        try:
            return base, start_lab(state_dir, base, *replica_args("payments=3"))
        except LabStartFailed:
            release_base_port(base)
            if attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def chaos_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("chaos-lab") / "state"
    base, registry = _start(state_dir)
    try:
        yield registry
        stop_lab(state_dir)
    finally:
        release_base_port(base)
    left = [p for p in psutil.Process().children(recursive=True)
            if any(word in " ".join(p.cmdline()) for word in ("chaos run", "chaoslab.load.orderstream"))]
    assert not left, f"chaos processes left: {[p.cmdline() for p in left]}"


@pytest.fixture
def lab_config(chaos_lab: dict[str, Any]) -> dict[str, str]:
    """The configuration an activity gets from `chaoslab chaos run`."""
    return {"chaoslab_state_dir": str(Path(chaos_lab["state_dir"]))}
