"""Real native labs in tests (tests/conftest.py builds its fixtures on them).

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
from pathlib import Path
from typing import IO, Any

import psutil

from chaoslab.lab.binaries import find_binaries
from chaoslab.lab.paths import LabPaths, repo_root
from chaoslab.lab.ports import MAX_REPLICAS, SERVICES, SPAN, PortPlan, taken_ports
from chaoslab.lab.procs import describe, lab_processes
from chaoslab.lab.programs import rabbitmq_env
from chaoslab.lab.spec import LabSpec
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


def release_base_port(base: int) -> None:
    handle = _held_locks.pop(base, None)
    if handle is not None:
        handle.close()


def run_chaoslab(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
                 timeout: float = CLI_TIMEOUT_S, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `chaoslab ARGS` as a user would (a new process, this Python), in `cwd` (default: the checkout);
    output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.cli", *map(str, args)],
        cwd=cwd or repo_root(), env=env if env is not None else dict(os.environ), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def replica_args(extra: str = "") -> list[str]:
    """--replicas: one replica of every service, then `extra` (e.g. "payments=2")."""
    items = [f"{s}=1" for s in SERVICES]
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


def rabbitmqctl(spec: LabSpec, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `rabbitmqctl -n NODE ARGS` against a lab's node, e.g. rabbitmqctl(spec, "list_queues", "name",
    "messages"). The node's environment (HOME with its cookie, ports) is the one the lab runs it with."""
    env = {**os.environ, **rabbitmq_env(spec)}
    return subprocess.run(
        [str(find_binaries().rabbitmqctl), "-n", spec.node_name, "-q", *args],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
