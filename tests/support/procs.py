"""Start and stop real service processes (`python -m services.<name>`) for tests.

    from support.procs import PortPool, sqlite_url, start

    handle = start("auth", {"DATABASE_URL": sqlite_url(tmp_path / "auth.db")}, ports=PortPool(21000, 21999))
    handle.url, handle.admin_url       # public and admin base URLs
    handle.stop()                      # SIGTERM, then SIGKILL after a grace period; idempotent

Each caller passes its own port range (PortPool) so that suites of different engineers never collide. Output goes
to a log file per process (handle.log_path, handle.log_tail()). Every handle is also registered for an atexit
SIGKILL, so a crashed test run leaves nothing behind; fixtures should still call stop() in a finalizer.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_live: set[ServiceProc] = set()


class PortPool:
    """Hands out ports from [lo, hi] that are free now and not handed out before by this pool."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self._given: set[int] = set()
        self._next = random.randint(lo, hi)  # a random start: two runs at once rarely race for the same port

    def take(self) -> int:
        span = self.hi - self.lo + 1
        for _ in range(span):
            port = self._next
            self._next = self.lo + (self._next - self.lo + 1) % span
            if port in self._given or not _bindable(port):
                continue
            self._given.add(port)
            return port
        raise RuntimeError(f"no free port in {self.lo}-{self.hi}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def sqlite_url(path: os.PathLike[str] | str) -> str:
    return f"sqlite+aiosqlite:///{Path(path).resolve()}"


class ServiceProc:
    def __init__(self, service: str, env: dict[str, str], http_port: int, admin_port: int, log_path: Path,
                 public: bool = True) -> None:
        self.service = service
        self.public = public
        self.env = env
        self.http_port = http_port
        self.admin_port = admin_port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{http_port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a signal to us (Ctrl-C) does not reach it twice
        )
        _live.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> ServiceProc:
        """Wait until /health/ready answers 200 and (if `public`) the public HTTP port accepts.

        Raises (with the log tail) if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.service} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.admin_url + "/health/ready", timeout=2) as resp:
                    if resp.status == 200 and (not self.public or _accepts(self.http_port)):
                        return self
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.service} not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after grace_s. Idempotent; returns the exit code."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, no drain (a crash)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        _live.discard(self)
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"<ServiceProc {self.service} pid={self.proc.pid} http={self.http_port} admin={self.admin_port}>"


def start(
    service: str,
    env: dict[str, str] | None = None,
    *,
    ports: PortPool,
    http_port: int | None = None,
    admin_port: int | None = None,
    log_dir: os.PathLike[str] | str | None = None,
    name: str | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    public: bool = True,
) -> ServiceProc:
    """Start `python -m services.<service>` with the environment `env` on top of this process' own.

    http_port / admin_port: taken from `ports` unless given (give the same http_port to several replicas: they
    share it with SO_REUSEPORT). wait=False returns at once (call wait_ready() later, e.g. to start replicas
    together). public=False: the service has no public HTTP port to wait for (payments serves gRPC).
    SPANS_DIR defaults to log_dir/spans so that tests never write into the repository's state dir.
    """
    http_port = http_port or ports.take()
    admin_port = admin_port or ports.take()
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="chaoslab-procs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"{service}-{admin_port}"
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HTTP_HOST": "127.0.0.1",
        "REPLICA_ID": name,
        "SPANS_DIR": str(log_dir / "spans"),
        **(env or {}),
        "HTTP_PORT": str(http_port),
        "ADMIN_PORT": str(admin_port),
    }
    handle = ServiceProc(service, full_env, http_port, admin_port, log_dir / f"{name}.log", public=public)
    if wait:
        handle.wait_ready(timeout)
    return handle


@atexit.register
def _kill_leftovers() -> None:
    for handle in list(_live):
        with contextlib.suppress(Exception):
            handle.kill()
