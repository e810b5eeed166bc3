"""Helpers for tests that run real labs (tests/conftest.py builds its fixtures on them).

Base ports for tests come from CHAOSLAB_TEST_PORTS (default 24000-32000, below Linux' ephemeral range), SPAN
apart; each reserved one is held with a lock file under /tmp/chaoslab-test-ports, so parallel pytest processes
never pick the same one.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psutil

from chaoslab.lab.paths import LabPaths, repo_root
from chaoslab.lab.ports import MAX_REPLICAS, SERVICES, SPAN, PortPlan, taken_ports
from chaoslab.lab.procs import describe, lab_processes
from chaoslab.lab.supervisor import Supervisor

CLI_TIMEOUT_S = 600
_held_locks: dict[int, IO[str]] = {}


class LabStartFailed(AssertionError):
    """`chaoslab up` failed in a test (the message holds its output)."""


def reserve_base_port() -> int:
    """A base port whose whole plan is free now, locked for this process until released."""
    low, high = (int(x) for x in os.environ.get("CHAOSLAB_TEST_PORTS", "24000-32000").split("-"))
    lock_dir = Path(tempfile.gettempdir()) / "chaoslab-test-ports"
    lock_dir.mkdir(exist_ok=True)
    everything = dict.fromkeys(SERVICES, MAX_REPLICAS)
    for base in range(low, high - SPAN + 1, SPAN):
        if base in _held_locks:
            continue
        handle = open(lock_dir / f"{base}.lock", "w")  # noqa: SIM115 (held open: the lock lives with it)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        if taken_ports(PortPlan(base).all_ports(everything)):
            handle.close()
            continue
        _held_locks[base] = handle
        return base
    raise RuntimeError(f"no free base port in CHAOSLAB_TEST_PORTS={low}-{high}")


def eventually(check: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 0.5,
               what: str | None = None) -> Any:
    """The first truthy value of check(), or fail after timeout_s (the machine may be busy: be generous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, \
            f"not true within {timeout_s} s: {what or check.__doc__ or check} (last value: {value!r})"
        time.sleep(every_s)


def release_base_port(base: int) -> None:
    handle = _held_locks.pop(base, None)
    if handle is not None:
        handle.close()


def run_chaoslab(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
                 timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run `chaoslab ARGS` as a user would (a new process, this Python); output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.cli", *map(str, args)],
        cwd=repo_root(), env=env if env is not None else dict(os.environ), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def available_services() -> list[str]:
    return [s for s in SERVICES if (repo_root() / "services" / s / "__main__.py").exists()]


def replica_args(extra: str = "") -> list[str]:
    """--replicas: one replica of every service that exists in the checkout, none of the others, then `extra`."""
    have = set(available_services())
    items = [f"{s}={1 if s in have else 0}" for s in SERVICES]
    if extra:
        items.append(extra)
    return ["--replicas", ",".join(items)]


def registry(state_dir: Path) -> dict[str, Any]:
    done = run_chaoslab("status", "--json", "--state-dir", state_dir)
    if done.returncode != 0:
        raise AssertionError(f"chaoslab status --json failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout))


def start_lab(state_dir: Path, base_port: int, *extra_args: str, timeout_s: float = 300) -> dict[str, Any]:
    """`chaoslab up`, then the registry; on failure, `down` and raise LabStartFailed with the output."""
    done = run_chaoslab("up", "--state-dir", state_dir, "--base-port", str(base_port),
                        "--timeout", str(timeout_s), *extra_args)
    if done.returncode != 0:
        run_chaoslab("down", "--state-dir", state_dir)
        raise LabStartFailed(f"chaoslab up failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return registry(state_dir)


def stop_lab(state_dir: Path) -> None:
    done = run_chaoslab("down", "--state-dir", state_dir)
    if done.returncode != 0:
        raise AssertionError(f"chaoslab down failed:\n{done.stdout}\n{done.stderr}")
    assert_no_lab_process(state_dir)


def assert_no_lab_process(state_dir: Path, base_port: int | None = None) -> None:
    """Nothing of the lab in `state_dir` runs: no supervisord, no process with its marker or its path in the
    command line, and (given the base port) none of its infrastructure ports is listened on."""
    paths = LabPaths.of(state_dir)
    assert not Supervisor(paths).is_running(), f"supervisord still answers for {paths.state}"
    left = lab_processes(paths.state)
    assert not left, f"processes of the lab left:\n{describe(left)}"
    named = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(paths.state) in " ".join(proc.info["cmdline"] or []):
            named.append(proc)
    assert not named, f"processes naming {paths.state} left:\n{describe(named)}"
    if base_port is not None:
        taken = taken_ports(PortPlan(base_port).infrastructure_ports())
        assert not taken, f"ports still taken: {taken}"


# --- the machine's PostgreSQL, for the suites that run on it ----------------------------------------------
PG_HOST, PG_PORT = "127.0.0.1", 5432


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip the calling test for a missing prerequisite; with CI=true, where setup installs everything, fail."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: setup should have provided it)")
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip (or, with CI=true, fail) the calling test when the machine's PostgreSQL does not answer."""
    import socket

    import pytest

    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return
    except OSError:
        pass
    message = f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the PostgreSQL suite must run)")
    pytest.skip(f"{message}: start it to run the PostgreSQL suite")


def pg_admin(statements: list[str]) -> None:
    """Run statements as postgres on the maintenance database (CREATE/DROP DATABASE for tests)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
