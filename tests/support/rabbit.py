"""A throwaway RabbitMQ node for service tests.

Never the system broker: each node gets its own name (`svc-test-<port>@localhost`), ports, data, logs,
config and HOME (Erlang cookie) under a temporary directory, runs in the foreground in its own process group,
and is killed with that whole group afterwards. Usage:

    from support.rabbit import RabbitNode, rabbit_node   # fixture `rabbit_node` (module scope), or the class directly

    node = RabbitNode(tmp_path / "rabbit")   # a free port pair from 22900-22998, or port=...
    node.start()          # blocks until AMQP accepts a connection
    node.amqp_url         # amqp://guest:guest@127.0.0.1:<port>/
    node.stop()           # a broker outage; node.start() brings it back with the same data (durable queues)
    node.close()          # stop and forget
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# This suite's ports are 22000-22999; brokers take a pair (AMQP, Erlang distribution = AMQP + 1) from here.
BROKER_PORTS = (22900, 22998)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _amqp_accepts(port: int) -> bool:
    """True when the broker answers the AMQP protocol header with Connection.Start (not just a TCP accept)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            data = s.recv(8)
            return len(data) >= 7 and data[0] == 1  # a method frame
    except OSError:
        return False


def free_port_pair(lo: int = BROKER_PORTS[0], hi: int = BROKER_PORTS[1]) -> int:
    """A port p in [lo, hi) with p and p + 1 both free now (a random start: parallel runs rarely collide)."""
    start = random.randrange(lo, hi)
    for i in range(hi - lo):
        port = lo + (start - lo + i) % (hi - lo)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError(f"no free port pair in {lo}-{hi}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RabbitNode:
    def __init__(self, base: Path, port: int | None = None, *, start_timeout_s: float = 60.0):
        self.base = Path(base)
        self.port = port or free_port_pair()
        self.dist_port = self.port + 1
        self.nodename = f"svc-test-{self.port}@localhost"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        home = self.base / "home"
        for d in ("home", "mnesia", "log"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.default = {self.port}\nloopback_users = none\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")  # do not read /etc/rabbitmq/rabbitmq-env.conf
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} is already taken; refusing to share a broker")
        env = self._env()
        self._log = open(self.base.parent / f"rabbit-{self.port}.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.base,  # where a dying node drops its MnesiaCore dump: never the checkout
            start_new_session=True,  # its own process group, so stop() takes beam and its children with it
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                raise RuntimeError(f"rabbitmq-server exited with {rc}; see {self._log.name}")
            if _amqp_accepts(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq did not accept AMQP on {self.port} within {self.start_timeout_s}s")

    def stop(self) -> None:
        """Kill the node and its process group (SIGKILL: an abrupt broker outage; data on disk stays)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.stop()

    def wipe(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory):
    node = RabbitNode(tmp_path_factory.mktemp("rabbit") / "node")
    node.start()
    try:
        yield node
    finally:
        node.close()
