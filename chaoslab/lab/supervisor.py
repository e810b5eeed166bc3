"""supervisord for a lab: starting it, and its XML-RPC API over the unix socket in the state dir."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection

from chaoslab.errors import LabError
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.programs import LAB_MARKER

RPC_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 180.0  # stopping everything waits for every program's stopwaitsecs


class _UnixConnection(UnixStreamHTTPConnection):
    timeout_s: float = RPC_TIMEOUT_S

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout_s)
        self.sock.connect(self.socketfile)


class _Transport(SupervisorTransport):
    def __init__(self, socket_path: Path, timeout_s: float) -> None:
        super().__init__(None, None, f"unix://{socket_path}")

        def get_connection() -> _UnixConnection:
            conn = _UnixConnection("localhost")
            conn.socketfile = str(socket_path)
            conn.timeout_s = timeout_s
            return conn

        self._get_connection = get_connection


class Supervisor:
    """A thin client of one lab's supervisord."""

    def __init__(self, paths: LabPaths, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.paths = paths
        self.timeout_s = timeout_s

    def _proxy(self, timeout_s: float | None = None) -> Any:
        transport = _Transport(self.paths.socket, timeout_s or self.timeout_s)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        return getattr(self._proxy(timeout_s), method)(*args)

    def is_running(self) -> bool:
        """True when a supervisord answers on this state dir's socket."""
        if not self.paths.socket.exists():
            return False
        try:
            return self.call("getState", timeout_s=5.0)["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def pid(self) -> int:
        return int(self.call("getPID"))

    def processes(self) -> list[dict[str, Any]]:
        return list(self.call("getAllProcessInfo"))

    def process(self, name: str) -> dict[str, Any]:
        return dict(self.call("getProcessInfo", name))

    def start(self, name: str) -> None:
        try:
            self.call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def stop_all(self) -> None:
        self.call("stopAllProcesses", True, timeout_s=STOP_TIMEOUT_S)

    def stop_group(self, name: str) -> None:
        try:
            self.call("stopProcessGroup", name, True, timeout_s=STOP_TIMEOUT_S)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read supervisord.conf: (added, changed, removed) group names; nothing is started or stopped."""
        added, changed, removed = self.call("reloadConfig")[0]
        return list(added), list(changed), list(removed)

    def add_group(self, name: str) -> None:
        self.call("addProcessGroup", name)

    def remove_group(self, name: str) -> None:
        self.stop_group(name)
        self.call("removeProcessGroup", name)

    def shutdown(self) -> None:
        self.call("shutdown")


def supervisord_pid(paths: LabPaths) -> int | None:
    try:
        return int(paths.supervisord_pid.read_text().strip())
    except (OSError, ValueError):
        return None


def start_supervisord(supervisord: Path, paths: LabPaths, timeout_s: float = 30.0) -> Supervisor:
    """Start supervisord in its own session (it outlives `chaoslab up`) and wait until it answers."""
    out = paths.log_file("supervisord.out")
    env = dict(os.environ)
    env[LAB_MARKER] = str(paths.state)
    if paths.socket.exists():  # a stale socket of a supervisord that died; is_running() said nobody answers
        paths.socket.unlink()
    with os.fdopen(os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as sink:
        proc = subprocess.Popen(
            [str(supervisord), "-c", str(paths.supervisord_conf)],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            env=env, cwd=str(paths.state), start_new_session=True,
            umask=0o077,  # its pid file, socket and logs, and (inherited) everything the lab's programs write
        )
    client = Supervisor(paths)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"supervisord exited at start (code {proc.returncode})",
                           details=_tail(out) + "\n" + _tail(paths.log_file("supervisord")))
        if client.is_running():
            return client
        time.sleep(0.1)
    proc.kill()
    raise LabError(f"supervisord did not answer on {paths.socket} within {timeout_s:.0f} s", details=_tail(out))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
