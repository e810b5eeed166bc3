"""Where everything of a lab lives under its state dir, and where runs (load, chaos, gameday) keep their results."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = ".chaoslab"
DEFAULT_RUNS_DIR = Path("runs")
UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin


def repo_root() -> Path:
    """The checkout this package runs from (services/ and alerts/ live there)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LabPaths:
    state: Path

    @classmethod
    def of(cls, state_dir: str | os.PathLike[str]) -> LabPaths:
        return cls(Path(state_dir).expanduser().resolve())

    # lab files
    @property
    def lab_json(self) -> Path:
        return self.state / "lab.json"

    @property
    def registry_json(self) -> Path:
        return self.state / "registry.json"

    # supervisord
    @property
    def supervisord_conf(self) -> Path:
        return self.state / "supervisord.conf"

    @property
    def supervisord_pid(self) -> Path:
        return self.state / "supervisord.pid"

    @property
    def socket(self) -> Path:
        """supervisord's unix socket: in the state dir, or under /tmp when that path is too long for a socket."""
        path = self.state / "supervisor.sock"
        if len(str(path)) <= UNIX_SOCKET_MAX:
            return path
        digest = hashlib.sha1(str(self.state).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"chaoslab-{digest}.sock"

    # directories
    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def spans(self) -> Path:
        return self.state / "spans"

    @property
    def alerts(self) -> Path:
        return self.state / "alerts"

    @property
    def notifications(self) -> Path:
        return self.alerts / "notifications.jsonl"

    @property
    def prometheus(self) -> Path:
        return self.state / "prometheus"

    @property
    def prometheus_yml(self) -> Path:
        return self.prometheus / "prometheus.yml"

    @property
    def targets(self) -> Path:
        return self.prometheus / "targets"

    @property
    def alertmanager(self) -> Path:
        return self.state / "alertmanager"

    @property
    def alertmanager_yml(self) -> Path:
        return self.alertmanager / "alertmanager.yml"

    @property
    def rabbitmq(self) -> Path:
        return self.state / "rabbitmq"

    @property
    def pki(self) -> Path:
        """The lab's CA and every certificate and key it issued (chaoslab.lab.pki); removed by `down`."""
        return self.state / "pki"

    def log_file(self, program: str) -> Path:
        return self.logs / f"{program}.log"

    def make_dirs(self) -> None:
        """The state dir and its folders, private to the lab's user (0700): they hold the lab's secrets (the
        admin token, the shop admin's password, auth's signing key in its database)."""
        for path in (self.state, self.logs, self.data, self.spans, self.alerts, self.targets,
                     self.prometheus / "data", self.alertmanager / "data",
                     self.rabbitmq / "home", self.rabbitmq / "mnesia", self.rabbitmq / "log"):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            while path != self.state.parent:  # mkdir's parents (and older folders) get the umask's mode
                path.chmod(0o700)
                path = path.parent


def new_run_dir(parent: Path, kind: str, name: str) -> Path:
    """PARENT/<UTC time>-<kind>-<name>/ (e.g. runs/20261204T101500Z-chaos-broker-outage), created, absolute; a
    suffix (-2, -3, ...) keeps runs of the same second apart."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = parent / f"{stamp}-{kind}-{name}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path.resolve()
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
