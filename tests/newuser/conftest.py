"""A lab of the new user's own (they inject faults and hold the lab's lease), and a working folder outside the
checkout where they write their experiments, locustfiles and plans, as someone who only read the docs would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.lab import release_base_port, replica_args, reserve_base_port, run_chaoslab, start_lab, stop_lab

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="package")
def user_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("newuser-lab") / "state"
    base = reserve_base_port()
    try:
        registry = start_lab(state_dir, base, *replica_args())
        yield registry
        stop_lab(state_dir)
    finally:
        release_base_port(base)


@pytest.fixture(scope="package")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newuser-work")


@pytest.fixture(scope="package")
def cli(user_lab: dict[str, Any], workdir: Path) -> Cli:
    """`chaoslab ...` in the user's folder, against their lab (CHAOSLAB_STATE_DIR, as the docs suggest)."""
    env = dict(os.environ, CHAOSLAB_STATE_DIR=user_lab["state_dir"])

    def run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = run_chaoslab(*args, env=env, timeout=timeout, cwd=workdir)
        assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
        return done

    return run
