"""Shared fixtures.

The native lab (owned by the lab's tests, used by everyone; helpers in tests/support/lab.py):
- `lab` (session): one real lab, started with `chaoslab up` in a temporary state dir on a free base port, stopped
  with `chaoslab down` at the end of the session (which also checks that no process of it is left). The value is
  the registry (docs/design.md, "The lab registry"): lab["gateway_url"], lab["admin_token"], lab["state_dir"],
  lab["services"]["orders"]["replicas"][0]["admin_url"], lab["prometheus_url"], lab["webhook_url"]...
  Every service whose module exists runs with one replica, payments with two (CHAOSLAB_TEST_REPLICAS, default
  "payments=2", changes that). Do not scale it or stop its replicas for good: other tests share it; start a
  lab of your own for that (`free_base_port` and support.lab.start_lab / stop_lab).
- `chaoslab_cli`: run the `chaoslab` command (a function: args -> CompletedProcess).
- `free_base_port`: reserve a free base port (a function: () -> int), released when the test ends;
  `lab_ports` gives (reserve, release) for fixtures wider than a test.

Base ports come from CHAOSLAB_TEST_PORTS (default 24000-32000), 300 apart, each locked for the pytest process
that holds it (support.lab).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.lab import release_base_port, replica_args, reserve_base_port, run_chaoslab, start_lab, stop_lab


@pytest.fixture(scope="session")
def chaoslab_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_chaoslab


@pytest.fixture(scope="session")
def lab_ports() -> tuple[Callable[[], int], Callable[[int], None]]:
    """(reserve, release) of base ports, for fixtures wider than a test."""
    return reserve_base_port, release_base_port


@pytest.fixture
def free_base_port() -> Iterator[Callable[[], int]]:
    """Reserve free base ports for labs of a test's own; released when the test ends."""
    mine: list[int] = []

    def reserve() -> int:
        mine.append(reserve_base_port())
        return mine[-1]

    yield reserve
    for base in mine:
        release_base_port(base)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("lab") / "state"
    base = reserve_base_port()
    try:
        # Two payments replicas by default: a killed one is then masked by the other (tests/e2e).
        registry = start_lab(state_dir, base, *replica_args(os.environ.get("CHAOSLAB_TEST_REPLICAS", "payments=2")))
        yield registry
        stop_lab(state_dir)
    finally:
        release_base_port(base)
