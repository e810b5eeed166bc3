"""How a replica starts and stops beside the things it depends on, in real service processes (services/kit/app.py):

- SIGTERM with SHUTDOWN_DELAY_S: the replica answers not ready at once, still takes new connections and serves
  them for the delay (while load balancers, endpoints and DNS stop sending), then drains and exits; with 0 (the
  native default) it exits at once.
- A database that is not there yet: the replica is live and not ready while it retries, with a doubling pause, for
  DB_CONNECT_TIMEOUT_S; then it exits 3 with one log line that names the database without its password and no
  traceback. A PostgreSQL that appears late (a real forwarder to the machine's PostgreSQL, started after a few
  seconds) is taken as soon as it answers. A database that refuses for good is given up at once, and a SIGTERM
  during the wait stops the replica at once.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from support.forward import Forwarder
from support.prereqs import PG_HOST, PG_PORT, pg_admin, require_postgres
from support.procs import PortPool, ServiceProc, sqlite_url, start
from support.waiting import eventually

pytestmark = pytest.mark.services

PORTS = PortPool(23700, 23799)
NO_PROXY = {"http": "", "https": ""}  # the test talks to 127.0.0.1 only, whatever the machine's proxy settings
PASSWORD = "s3cret-Pa55word"  # must never reach a log line
DATABASE_UNREACHABLE_EXIT = 3


def _get(url: str) -> int | None:
    """The status of GET url, None when nothing answers."""
    try:
        return requests.get(url, timeout=2, proxies=NO_PROXY).status_code
    except requests.RequestException:
        return None


def _log(proc: ServiceProc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.log_path.read_text(errors="replace").splitlines()
            if line.startswith("{")]


def _messages(proc: ServiceProc) -> list[str]:
    return [line["message"] for line in _log(proc)]


def _exit_within(proc: ServiceProc, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while proc.running():
        assert time.monotonic() < deadline, f"still running after {seconds} s:\n{proc.log_tail()}"
        time.sleep(0.05)
    return int(proc.proc.returncode)


def _auth(tmp_path: Path, delay_s: float) -> ServiceProc:
    """auth on SQLite: a real service with a database whose JWKS answers anyone (a request that needs no token)."""
    return start("auth", {"DATABASE_URL": sqlite_url(tmp_path / "auth.db"), "SHUTDOWN_DELAY_S": str(delay_s)},
                 ports=PORTS, log_dir=tmp_path)


def test_a_stopping_replica_is_not_ready_but_serves_for_the_shutdown_delay(tmp_path: Path) -> None:
    delay = 3.0
    auth = _auth(tmp_path, delay)
    try:
        jwks = f"{auth.url}/.well-known/jwks.json"
        assert _get(jwks) == 200
        auth.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        eventually(lambda: _get(f"{auth.admin_url}/health/ready") == 503, 1.5, 0.05, "not ready at once")
        answer = requests.get(f"{auth.admin_url}/health/ready", timeout=2, proxies=NO_PROXY).json()
        assert answer["status"] == "draining"
        # A new connection, a full answer: the listener is still open and the handlers still run.
        time.sleep(1.0)
        assert _get(jwks) == 200, "a request during the shutdown delay was not served"
        assert time.monotonic() - signalled < delay, "the check came too late to say anything about the delay"
        assert _exit_within(auth, delay + 10) == 0
        took = time.monotonic() - signalled
    finally:
        auth.stop()
    assert delay - 0.2 <= took <= delay + 3, f"stopped {took:.1f} s after SIGTERM with a {delay} s delay"
    messages = _messages(auth)
    delayed = messages.index("stopping: not ready, still serving")
    assert messages.index("stopping: draining in-flight requests") > delayed
    assert messages[-1] == "stopped"


def test_without_a_shutdown_delay_a_replica_stops_at_once(tmp_path: Path) -> None:
    auth = _auth(tmp_path, 0)
    try:
        auth.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert _exit_within(auth, 5) == 0
        took = time.monotonic() - signalled
    finally:
        auth.stop()
    assert took < 2.0, f"took {took:.1f} s to stop without a delay"
    assert "stopping: not ready, still serving" not in _messages(auth)


def _users(tmp_path: Path, database_url: str, timeout_s: float, wait: bool = False) -> ServiceProc:
    return start("users", {"DATABASE_URL": database_url, "DB_CONNECT_TIMEOUT_S": str(timeout_s),
                           "AUTH_URL": f"http://127.0.0.1:{PORTS.take()}"},
                 ports=PORTS, log_dir=tmp_path, name=f"users-{uuid.uuid4().hex[:6]}", wait=wait)


def _retries(proc: ServiceProc) -> list[dict[str, Any]]:
    return [line for line in _log(proc) if line["message"] == "database not reachable yet; retrying"]


def _no_secret_and_no_traceback(proc: ServiceProc) -> None:
    text = proc.log_path.read_text(errors="replace")
    assert PASSWORD not in text
    assert "Traceback" not in text, text[-3000:]


def test_a_database_that_never_answers_is_retried_then_given_up_with_one_clear_line(tmp_path: Path) -> None:
    nobody = PORTS.take()  # nothing listens there
    users = _users(tmp_path, f"postgresql+asyncpg://users:{PASSWORD}@127.0.0.1:{nobody}/users", timeout_s=4)
    started = time.monotonic()
    try:
        eventually(lambda: _get(f"{users.admin_url}/health/live") == 200, 15, 0.05, "live while it waits")
        assert _get(f"{users.admin_url}/health/ready") == 503
        assert _get(users.url) is None  # the public port opens only once the replica can serve
        code = _exit_within(users, 30)
        took = time.monotonic() - started
    finally:
        users.stop()
    assert code == DATABASE_UNREACHABLE_EXIT, users.log_tail()
    assert took < 4 + 15, f"gave up after {took:.1f} s for a 4 s timeout"
    retries = _retries(users)
    assert len(retries) >= 3, users.log_tail()
    pauses = [line["retry_in_s"] for line in retries]
    assert max(pauses) > min(pauses), f"the pause does not grow: {pauses}"
    assert all("ConnectionRefusedError" in line["error"] for line in retries)
    last = _log(users)[-1]
    assert (last["level"], last["message"]) == ("error", "giving up: database unreachable")
    assert f"127.0.0.1:{nobody}/users" in last["error"] and "did not answer within 4 s" in last["error"]
    _no_secret_and_no_traceback(users)


def test_a_stop_while_waiting_for_the_database_ends_the_replica_at_once(tmp_path: Path) -> None:
    users = _users(tmp_path, f"postgresql+asyncpg://users:{PASSWORD}@127.0.0.1:{PORTS.take()}/users", timeout_s=60)
    try:
        eventually(lambda: _retries(users), 15, 0.1, "waiting for its database")
        users.proc.send_signal(signal.SIGTERM)
        assert _exit_within(users, 3) == 0
    finally:
        users.stop()
    messages = _messages(users)
    assert "stopping before the replica started" in messages and messages[-1] == "stopped"
    _no_secret_and_no_traceback(users)


@pytest.fixture
def users_database() -> Any:
    require_postgres()
    name = f"chaoslab_t24_{uuid.uuid4().hex[:8]}"
    pg_admin([f'CREATE DATABASE "{name}"'])
    yield name
    pg_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])


@pytest.mark.postgres
def test_a_postgresql_that_comes_up_late_is_taken_when_it_answers(tmp_path: Path, users_database: str) -> None:
    port = PORTS.take()
    with Forwarder((PG_HOST, PG_PORT), listen_port=port) as postgres:
        users = _users(tmp_path, f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{users_database}", timeout_s=60)
        try:
            eventually(lambda: len(_retries(users)) >= 4, 20, 0.1, "retrying while PostgreSQL is away")
            assert _get(f"{users.admin_url}/health/live") == 200
            assert _get(f"{users.admin_url}/health/ready") == 503
            postgres.start()
            up = time.monotonic()
            users.wait_ready(30)
            ready_after = time.monotonic() - up
            assert postgres.connections > 0  # it is PostgreSQL through the forwarder that it reached
            assert users.running()
        finally:
            users.stop()
    # The longest pause between attempts is 4 s (services/kit/db.py, LAST_RETRY_S), plus the table creation.
    assert ready_after < 8, f"ready {ready_after:.1f} s after PostgreSQL came up"
    reachable = [line for line in _log(users) if line["message"] == "database reachable"]
    assert len(reachable) == 1 and reachable[0]["attempts"] >= 3, users.log_tail()


@pytest.mark.postgres
def test_a_database_that_refuses_for_good_is_given_up_at_once(tmp_path: Path) -> None:
    require_postgres()
    users = _users(tmp_path, f"postgresql+asyncpg://postgres:{PASSWORD}@{PG_HOST}:{PG_PORT}/chaoslab_t24_none",
                   timeout_s=60)
    try:
        code = _exit_within(users, 15)  # far less than the 60 s it would wait for a database still starting
    finally:
        users.stop()
    assert code == DATABASE_UNREACHABLE_EXIT
    assert not _retries(users)
    last = _log(users)[-1]
    assert last["message"] == "giving up: database unreachable"
    assert "refused the connection (InvalidCatalogNameError" in last["error"], last
    _no_secret_and_no_traceback(users)
