"""`chaoslab up` fails fast, clearly, without a traceback, and leaves nothing running."""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chaoslab.lab.binaries import rabbitmq_scripts
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.procs import lab_processes, wait_gone
from chaoslab.lab.supervisor import supervisord_pid
from support.lab import assert_no_lab_process, run_chaoslab
from support.prereqs import require_postgres, skip_or_fail_in_ci

pytestmark = pytest.mark.lab

ONLY = {s: 0 for s in SERVICES}


def replicas(**wanted: int) -> list[str]:
    return ["--replicas", ",".join(f"{s}={n}" for s, n in {**ONLY, **wanted}.items())]


def assert_clear_failure(done: object) -> str:
    assert done.returncode == 1, done.stdout + done.stderr  # type: ignore[attr-defined]
    err = done.stderr  # type: ignore[attr-defined]
    assert "error:" in err and "Traceback" not in err and "Traceback" not in done.stdout  # type: ignore[attr-defined]
    return str(err)


def test_up_without_rabbitmq_on_path_names_it_and_starts_nothing(
        tmp_path: Path, free_base_port: Callable[[], int]) -> None:
    if rabbitmq_scripts() is None:
        skip_or_fail_in_ci("rabbitmq-server is not installed (make setup installs it)")
    base, state = free_base_port(), tmp_path / "state"
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if d and not (Path(d) / "rabbitmq-server").exists())
    done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), env={**os.environ, "PATH": path})
    err = assert_clear_failure(done)
    assert "rabbitmq-server" in err
    assert "apt-get install -y prometheus prometheus-alertmanager rabbitmq-server" in err and "make setup" in err
    assert not (state / "supervisord.conf").exists()
    assert_no_lab_process(state, base)


def test_a_taken_port_is_named_with_what_it_is_for(tmp_path: Path, free_base_port: Callable[[], int]) -> None:
    base, state = free_base_port(), tmp_path / "state"
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a lab just stopped may leave TIME_WAIT
        squatter.bind(("127.0.0.1", base + 20))
        squatter.listen()
        done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base))
    err = assert_clear_failure(done)
    assert f"{base + 20} (Prometheus)" in err and "--base-port" in err
    assert_no_lab_process(state, base)


def test_a_replica_that_cannot_start_is_named_with_its_log(tmp_path: Path,
                                                           free_base_port: Callable[[], int]) -> None:
    """RabbitMQ and the rest start, then the broken replica stops the whole `up`, and all is stopped."""
    base, state = free_base_port(), tmp_path / "state"
    env = {**os.environ, "UPSTREAM_TIMEOUT_S": "soon"}  # the kit refuses it at start
    done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(users=1), env=env)
    err = assert_clear_failure(done)
    assert "users-1 keeps exiting" in err
    assert "UPSTREAM_TIMEOUT_S" in err  # the tail of its log says why
    assert "chaoslab logs users-1" in err
    assert_no_lab_process(state, base)
    assert (state / "logs" / "rabbitmq.log").exists()  # it did get as far as the broker


def test_a_stage_not_ready_in_time_is_named_with_its_log(tmp_path: Path,
                                                         free_base_port: Callable[[], int]) -> None:
    """No RabbitMQ boots in 1 s: the timeout names it, shows its log, and everything is stopped."""
    base, state = free_base_port(), tmp_path / "state"
    done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(), "--timeout", "1")
    err = assert_clear_failure(done)
    assert "not ready within 1 s: rabbitmq" in err and "--timeout" in err
    assert f"{state}/logs/rabbitmq.log" in err
    assert_no_lab_process(state, base)


def test_an_unreachable_postgres_fails_before_anything_starts(tmp_path: Path,
                                                                free_base_port: Callable[[], int]) -> None:
    base, state = free_base_port(), tmp_path / "state"
    template = "postgresql+asyncpg://postgres@127.0.0.1:1/chaoslab_{service}"
    done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(users=1),
                        "--database-url-template", template)
    err = assert_clear_failure(done)
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in err
    assert_no_lab_process(state, base)


@pytest.mark.postgres
def test_postgres_databases_are_created_for_the_services(tmp_path: Path,
                                                         free_base_port: Callable[[], int]) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"

    async def query(sql: str, *args: object) -> list[object]:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            return [r[0] for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    require_postgres()
    prefix = f"chaoslab_test_{uuid.uuid4().hex[:8]}"
    template = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefix}_{{service}}"
    base, state = free_base_port(), tmp_path / "state"
    try:
        done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(users=1),
                            "--database-url-template", template)
        assert done.returncode == 0, done.stdout + done.stderr
        names = asyncio.run(query("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}%"))
        assert names == [f"{prefix}_users"]
        tables = run_chaoslab("status", "--json", "--state-dir", state)
        assert '"ready": true' in tables.stdout
    finally:
        run_chaoslab("down", "--state-dir", state)
        for name in asyncio.run(query("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}%")):
            asyncio.run(query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert_no_lab_process(state, base)


def test_down_ends_the_orphans_of_a_killed_supervisord(tmp_path: Path, free_base_port: Callable[[], int]) -> None:
    """supervisord SIGKILLed: its programs run on, orphaned; `up` refuses to start beside them, `down` ends them
    all (found by the lab's marker in their environment)."""
    base, state = free_base_port(), tmp_path / "state"
    done = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(users=1))
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        pid = supervisord_pid(LabPaths.of(state))
        assert pid
        os.kill(pid, signal.SIGKILL)
        assert wait_gone([pid], 30)
        orphans = lab_processes(state)
        assert len(orphans) >= 5  # RabbitMQ (shell, VM, ...), Prometheus, Alertmanager, webhook, users-1
        status = run_chaoslab("status", "--state-dir", state)
        assert status.returncode == 1 and "no lab runs" in status.stdout
        again = run_chaoslab("up", "--state-dir", state, "--base-port", str(base), *replicas(users=1))
        err = assert_clear_failure(again)
        assert "processes of an earlier lab" in err and "chaoslab down" in err
    finally:
        down = run_chaoslab("down", "--state-dir", state)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "ended leftover processes" in down.stdout
    assert_no_lab_process(state, base)
