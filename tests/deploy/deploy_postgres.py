"""A throwaway PostgreSQL cluster (the machine's binaries) to run compose/postgres/init-databases.sh for real.

Local socket connections are trusted, as in the postgres image while it runs /docker-entrypoint-initdb.d;
TCP on 127.0.0.1 needs a password, so the test can tell a right password from a wrong one.
PostgreSQL refuses to run as root: as root (CI), the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from deploy_support import SERVICES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempCluster:
    SERVICES = tuple(s for s in SERVICES if s != "gateway")  # the gateway has no database

    def __init__(self, _tmp: Path) -> None:
        for binary in ("initdb", "pg_ctl", "psql"):
            if shutil.which(binary) is None:
                pytest.fail(f"{binary} is not installed (Debian package postgresql)")
        # Not pytest's tmp_path: its parents are private to root, and the server may run as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="chaoslab-pg-"))
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self.dir.chmod(0o755)
        self.env = {**os.environ, "PGHOST": str(self.dir), "PGPORT": str(self.port)}

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120,
                              env=kw.pop("env", self.env), **kw)

    def __enter__(self) -> TempCluster:
        data = self.dir / "data"
        done = self._run(["initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust",
                          "--auth-host=scram-sha-256"])
        assert done.returncode == 0, done.stderr
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir}"
        done = self._run(["pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"])
        assert done.returncode == 0, done.stderr + (self.dir / "log").read_text()
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(["pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop"])
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_script(self, script: Path, env: dict[str, str]) -> None:
        copy = self.dir / script.name
        shutil.copyfile(script, copy)
        copy.chmod(0o755)
        done = self._run(["sh", str(copy)], env={**self.env, **env, "POSTGRES_USER": "postgres"})
        assert done.returncode == 0, done.stdout + done.stderr

    def can_connect(self, user: str, password: str, database: str) -> bool:
        dsn = f"host=127.0.0.1 port={self.port} user={user} password={password} dbname={database}"
        done = subprocess.run(["psql", dsn, "-tAc", "select 1"], capture_output=True, text=True, timeout=30)
        return done.returncode == 0 and done.stdout.strip() == "1"
