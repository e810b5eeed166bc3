"""TLS to PostgreSQL (DATABASE_TLS=on): a real PostgreSQL server of the test's own (initdb from the machine's
PostgreSQL 15 binaries, run as the postgres user) with a certificate of the test's CA (made by the lab's PKI), that
takes only TLS connections authenticated by a client certificate of that CA (pg_hba `hostssl ... cert`: the
certificate's CN is the database user). users, configured with its certificate, serves from it; the same service
without DATABASE_TLS cannot connect, and neither can a client without a certificate.

The lab itself uses the machine's PostgreSQL, which is not the lab's and speaks no TLS here: there DATABASE_TLS
stays off (docs/design.md, "Security")."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from chaoslab.lab.pki import Pki
from support.prereqs import skip_or_fail_in_ci
from support.procs import PortPool, sqlite_url, start

pytestmark = [pytest.mark.services, pytest.mark.postgres]

BIN = Path("/usr/lib/postgresql/15/bin")
PORTS = PortPool(23900, 23949)


def as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Pki, int]]:
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None or os.geteuid() != 0:
        skip_or_fail_in_ci("a PostgreSQL server of the test's own needs the postgresql-15 binaries and root "
                           "(to run it as the postgres user)")
    # pytest's temporary folders are root's alone (0700): the server runs as postgres, so its folder is elsewhere
    root = Path(tempfile.mkdtemp(prefix="chaoslab-pg-tls-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres", "postgres")  # its log and socket go here
    pki = Pki(root / "pki")
    pki.ensure_ca()
    for holder, identity in (("postgres", "users"), ("users-1", "users"), ("orders-1", "orders")):
        pki.issue(holder, identity, 3600, addresses=("127.0.0.1",))
    data = root / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    assert as_postgres(str(BIN / "initdb"), "-D", str(data), "-A", "reject", "-U", "postgres").returncode == 0
    for name, source in (("server.crt", pki.cert_file("postgres")), ("server.key", pki.key_file("postgres")),
                         ("root.crt", pki.ca_file)):
        shutil.copy(source, data / name)
        shutil.chown(data / name, "postgres", "postgres")
        (data / name).chmod(0o600)
    # only TLS with a client certificate of the CA; the local socket for the test's own set-up
    (data / "pg_hba.conf").write_text("local all postgres peer\nhostssl all all 127.0.0.1/32 cert\n")
    port = PORTS.take()
    with open(data / "postgresql.auto.conf", "a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                   "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n")
    started = as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "start")
    assert started.returncode == 0, started.stdout + started.stderr + (root / "pg.log").read_text()
    try:
        for statement in ("CREATE USER users", "CREATE DATABASE users OWNER users"):
            created = as_postgres(str(BIN / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-c",
                                  statement)
            assert created.returncode == 0, created.stderr
        yield pki, port
    finally:
        as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_a_service_reaches_postgresql_over_mutual_tls_and_without_it_not(server: tuple[Pki, int],
                                                                         tmp_path: Path) -> None:
    pki, port = server
    url = f"postgresql+asyncpg://users@127.0.0.1:{port}/users"
    tls = {"TLS_CERT_FILE": str(pki.cert_file("users-1")), "TLS_KEY_FILE": str(pki.key_file("users-1")),
           "TLS_CA_FILE": str(pki.ca_file)}
    auth = start("auth", {"DATABASE_URL": sqlite_url(tmp_path / "auth.db"), **tls, "ADMIN_TOKEN": "t"},
                 ports=PORTS, log_dir=tmp_path)
    try:
        users = start("users", {"DATABASE_URL": url, "DATABASE_TLS": "on", **tls, "ADMIN_TOKEN": "t",
                                "AUTH_URL": f"https://127.0.0.1:{auth.http_port}"}, ports=PORTS, log_dir=tmp_path)
        users.stop()  # it started: its tables are created in the server, over TLS as `users`
        plain = start("users", {"DATABASE_URL": url, **tls, "ADMIN_TOKEN": "t", "DB_CONNECT_TIMEOUT_S": "2",
                                "AUTH_URL": f"https://127.0.0.1:{auth.http_port}"}, ports=PORTS, log_dir=tmp_path,
                      wait=False)
        assert plain.proc.wait(30) == 3  # the kit's "database unreachable": the server refused it without TLS
        assert "giving up: database unreachable" in plain.log_tail()
    finally:
        auth.stop()

    async def tables(context: ssl.SSLContext) -> list[str]:
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="users", database="users", ssl=context,
                                     timeout=10)
        try:
            return [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE "
                                                              "schemaname = 'public'")]
        finally:
            await conn.close()

    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(pki.cert_file("users-1"), pki.key_file("users-1"))
    assert asyncio.run(tables(context))  # users' tables are there, written over mutual TLS
    no_certificate = ssl.create_default_context(cafile=str(pki.ca_file))
    with pytest.raises((asyncpg.PostgresError, ConnectionError, OSError)):
        asyncio.run(tables(no_certificate))
    wrong_user = ssl.create_default_context(cafile=str(pki.ca_file))
    wrong_user.load_cert_chain(pki.cert_file("orders-1"), pki.key_file("orders-1"))  # CN orders, user users
    with pytest.raises(asyncpg.PostgresError):
        asyncio.run(tables(wrong_user))
