"""Starting Locust for a scenario (standalone, or a master with worker processes) and collecting its verdict.

Locust runs as its own processes (`python -m locust -f loadtests/locustfile.py ...`), exactly the command compose
and the k8s Job run, rather than as a library inside this process: Locust monkey-patches the standard library
with gevent at import, which the rest of chaoslab must not inherit, and distributed mode needs processes anyway.
The locustfile writes summary.json (totals, per-stage windows, threshold checks); this module reads it.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import loadtests
from chaoslab.errors import RUN_FAILED, LoadError
from chaoslab.load.target import Target, free_port
from loadtests import scenarios

# The locustfile of the installed loadtests package (plain Locust: compose and Kubernetes run the same file).
LOCUSTFILE = Path(loadtests.__file__).with_name("locustfile.py")
# The same scenarios for a user's own locustfile, loaded next to it (loadtests/with_your_users.py says why).
WITH_YOUR_USERS = Path(loadtests.__file__).with_name("with_your_users.py")
SUMMARY = "summary.json"
CSV_PREFIX = "locust"  # locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv
HTML = "report.html"
LOG = "locust.log"
STOP_GRACE_S = 30.0  # after SIGINT Locust stops its users and writes the CSV and HTML files
RUN_GRACE_S = 60.0  # beyond the planned duration: sign-ups, shutdown and report writing
TICK_S = 1.0


@dataclass(frozen=True)
class LoadRequest:
    scenario: str
    target: Target
    run_dir: Path
    users: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    mix: str | None = None
    thresholds: list[str] = field(default_factory=list)
    ui: bool = False
    workers: int = 0
    locustfile: Path | None = None  # a user's own locustfile: its user classes instead of chaoslab's journeys
    user_classes: tuple[str, ...] = ()  # some of them (default: all)

    def locustfiles(self) -> str:
        """Locust's -f: chaoslab's locustfile, or the scenarios next to the user's own file."""
        if self.locustfile is None:
            return str(LOCUSTFILE)
        return f"{WITH_YOUR_USERS},{self.locustfile.resolve()}"


@dataclass
class LoadOutcome:
    run_dir: Path
    returncode: int | None
    summary: dict[str, Any] | None
    web_url: str | None = None
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return bool(self.summary and self.summary.get("passed"))

    def files(self) -> list[Path]:
        return sorted(p for p in self.run_dir.iterdir() if p.is_file())


def locust_args(req: LoadRequest, *, master_port: int | None = None, web_port: int | None = None) -> list[str]:
    """The standalone (or master) Locust command line of a request."""
    run_dir = req.run_dir.resolve()
    args = [
        sys.executable, "-m", "locust", "-f", req.locustfiles(), "--host", req.target.host,
        "--scenario", req.scenario,
        "--summary-file", str(run_dir / SUMMARY),
        "--metrics-host", "127.0.0.1", "--metrics-port", str(req.target.metrics_port),
        "--csv", str(run_dir / CSV_PREFIX), "--csv-full-history", "--html", str(run_dir / HTML),
        "--loglevel", "INFO",
    ]
    if req.users is not None:
        args += ["--peak-users", str(req.users)]
    if req.duration_s is not None:
        args += ["--duration", f"{req.duration_s:g}s"]
    if req.rate is not None:
        args += ["--rate", f"{req.rate:g}"]
    if req.locustfile is not None:
        args += ["--mix", scenarios.MIX_CUSTOM]
        if req.user_classes:
            args += ["--custom-users", ",".join(req.user_classes)]
    elif req.mix:
        args += ["--mix", req.mix]
    if req.thresholds:
        args += ["--thresholds", ";".join(req.thresholds)]
    if req.ui:
        # the scenario starts at once (as headless would); the UI shows it live and can restart it
        args += ["--web-host", "127.0.0.1", "--web-port", str(web_port or free_port()), "--autostart"]
    else:
        args += ["--headless", "--only-summary"]
    if req.workers > 0:
        args += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                 "--expect-workers", str(req.workers), "--expect-workers-max-wait", "60"]
    return args


def worker_args(master_port: int, req: LoadRequest) -> list[str]:
    # Workers get the scenario's options from the master with each spawn message.
    return [sys.executable, "-m", "locust", "-f", req.locustfiles(), "--worker",
            "--master-host", "127.0.0.1", "--master-port", str(master_port), "--loglevel", "INFO"]


def check_locustfile(path: Path, user_classes: tuple[str, ...] | list[str] = ()) -> Path:
    """A user's locustfile, checked before Locust starts (without importing it: Locust patches the standard
    library with gevent at import): it exists, is Python that parses, and defines the classes asked for.
    LoadError (exit 2) saying what is wrong; the resolved path otherwise."""
    if not path.is_file():
        raise LoadError(f"no locustfile {path}")
    if path.suffix != ".py":
        raise LoadError(f"{path}: a locustfile is a Python file (.py)")
    if path.stem in ("with_your_users", "locust"):
        raise LoadError(f"{path}: rename it (Locust imports files by their name, and {path.name} is taken)")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except SyntaxError as exc:
        raise LoadError(f"{path}:{exc.lineno}:{exc.offset}: not valid Python: {exc.msg}") from None
    defined = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    missing = [name for name in user_classes if name not in defined]
    if missing:
        raise LoadError(f"{path} defines no class {', '.join(missing)} (it defines: {', '.join(defined) or 'none'})")
    if not defined:
        raise LoadError(f"{path} defines no class: write a subclass of locust.HttpUser with tasks")
    return path.resolve()


class _Terminated(Exception):
    pass


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the Locust processes are stopped, not orphaned."""
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGINT to all (the master then writes its reports), then SIGKILL to whatever is left after the grace."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def log_tail(run_dir: Path, lines: int = 30) -> str:
    chunks = []
    for path in sorted(run_dir.glob("*.log")):
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        chunks.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(chunks)


class Locust:
    """Locust's processes for one request (standalone, or a master and its workers), each in a session of its
    own: Ctrl-C reaches the caller only, which then stops Locust in order (master first, so that the reports are
    written) instead of every process at once. Output goes to a log file per process in the run dir."""

    def __init__(self, req: LoadRequest) -> None:
        self.req = req
        self.master_port = free_port() if req.workers > 0 else None
        self.web_port = free_port() if req.ui else None
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def web_url(self) -> str | None:
        return f"http://127.0.0.1:{self.web_port}" if self.web_port else None

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.req.run_dir / log_name, "wb")  # noqa: SIM115 - closed by close()
        self._logs.append(log)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.req.run_dir, env=self._env(), start_new_session=True)
        self.procs.append(proc)
        return proc

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        account = (self.req.target.registry or {}).get("admin_account")
        if account:  # the journeys' admin logs in with the lab's own admin account (loadtests/journeys.py)
            env["BOOTSTRAP_ADMIN"] = f"{account['email']}:{account['password']}"
        return env

    def start(self) -> subprocess.Popen[bytes]:
        """Start the master (or standalone) process, then the workers; the master's process."""
        self.req.run_dir.mkdir(parents=True, exist_ok=True)
        command = locust_args(self.req, master_port=self.master_port, web_port=self.web_port)
        (self.req.run_dir / "command.txt").write_text(" ".join(command) + "\n")
        master = self._spawn(command, LOG)
        for n in range(self.req.workers):
            assert self.master_port is not None
            self._spawn(worker_args(self.master_port, self.req), f"worker-{n + 1}.log")
        return master

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGINT to every process (the master then writes its reports), SIGKILL to what is left after the grace;
        the master's exit code."""
        _stop(self.procs, grace_s)
        return self.procs[0].returncode if self.procs else None

    def close(self) -> None:
        for log in self._logs:
            log.close()
        self._logs.clear()


def run(req: LoadRequest, expected_s: float, on_tick: Callable[[float], None] | None = None,
        on_started: Callable[[str | None], None] | None = None) -> LoadOutcome:
    """Run Locust for the request and wait: until its shape ends (headless), or Ctrl-C (--ui).

    `on_tick(elapsed_s)` is called about once a second (the live display); `on_started(web_url)` once the
    processes are up. A headless run that outlives its plan by RUN_GRACE_S is stopped and reported as failed.
    """
    locust = Locust(req)
    outcome = LoadOutcome(req.run_dir, None, None, web_url=locust.web_url)
    deadline = None if req.ui else time.monotonic() + expected_s + RUN_GRACE_S
    try:
        with _sigterm_raises():
            master = locust.start()
            if on_started:
                on_started(outcome.web_url)
            began = time.monotonic()
            while master.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    locust.stop(STOP_GRACE_S)
                    raise LoadError(
                        f"Locust did not finish within {expected_s + RUN_GRACE_S:.0f} s; stopped it",
                        details=log_tail(req.run_dir), exit_code=RUN_FAILED)
                if on_tick:
                    on_tick(time.monotonic() - began)
                time.sleep(TICK_S)
    except (KeyboardInterrupt, _Terminated):
        outcome.interrupted = True
        locust.stop(STOP_GRACE_S)
    finally:
        outcome.returncode = locust.stop(10.0)  # workers, and anything left when an exception went by
        locust.close()
    outcome.summary = read_summary(req.run_dir)
    if outcome.summary is None and not outcome.interrupted:
        raise LoadError(f"Locust ended (exit code {outcome.returncode}) without a summary",
                        details=log_tail(req.run_dir), exit_code=RUN_FAILED)
    return outcome
