"""Faults the lab holds outside the services, and their undoing, through its supervisord: a replica killed
(SIGKILL: supervisord restarts it), paused (SIGSTOP, until SIGCONT), a program stopped (until started).

Also what any fault can leave behind (in-service faults through the admin API, paused or stopped programs),
and `restore()`: the rollback of last resort that every experiment ends with, that a gameday runs before it
starts and after a failed experiment, and that `chaoslab faults --clear` runs.
"""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from chaoslab.clients.admin import AdminClient, replicas_of
from chaoslab.errors import LabError
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.probes import all_ready, broker_serving, poll
from chaoslab.lab.supervisor import Supervisor

BROKER = "rabbitmq"
STOP_TIMEOUT_S = 90.0  # RabbitMQ's stopwaitsecs is 30; a replica's 20
RESTORE_TIMEOUT_S = 90.0


def supervisor_of(state_dir: str | Path) -> Supervisor:
    """The running lab's supervisord; LabError when none answers."""
    sv = Supervisor(LabPaths.of(state_dir))
    if not sv.is_running():
        raise LabError(f"no supervisord answers for the lab in {LabPaths.of(state_dir).state}",
                       hint=f"start it: chaoslab up --state-dir {state_dir}")
    return sv


def _fault_name(fault: xmlrpc.client.Fault) -> str:
    return fault.faultString.split(":", 1)[0]


def signal(sv: Supervisor, name: str, sig: str) -> dict[str, Any]:
    """Send `sig` (KILL, STOP, CONT) to one program's process: {"name", "pid" (before the signal), "signal", "at"}."""
    info = sv.process(name)
    if info["statename"] != "RUNNING":
        raise LabError(f"{name} is {info['statename']}, not RUNNING: nothing to signal")
    sv.call("signalProcess", name, sig)
    return {"name": name, "pid": int(info["pid"]), "signal": sig, "at": time.time()}


def running_programs(sv: Supervisor, names: list[str]) -> list[str]:
    return [n for n in names if sv.process(n)["statename"] == "RUNNING"]


def paused_programs(sv: Supervisor) -> list[str]:
    """Programs whose process is stopped by SIGSTOP (supervisord still says RUNNING)."""
    out = []
    for info in sv.processes():
        pid = int(info.get("pid") or 0)
        if not pid:
            continue
        try:
            if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                out.append(str(info["name"]))
        except psutil.Error:
            continue
    return out


def resume(sv: Supervisor, names: list[str]) -> list[str]:
    for name in names:
        sv.call("signalProcess", name, "CONT")
    return names


def process_faults(sv: Supervisor, service: str | None = None) -> dict[str, list[str]]:
    """Process faults in place now: paused programs, and programs stopped or given up by supervisord (a killed
    replica between its death and its restart is neither). Process faults have no TTL: this is how
    `chaoslab faults` and the runners find the ones a crashed experiment left."""

    def wanted(name: str) -> bool:
        return service is None or name.rsplit("-", 1)[0] == service

    stopped = [str(p["name"]) for p in sv.processes()
               if p["statename"] in ("STOPPED", "EXITED", "FATAL") and wanted(str(p["name"]))]
    return {"paused": [n for n in paused_programs(sv) if wanted(n)], "stopped": stopped}


def _each(sv: Supervisor, method: str, verb: str, names: list[str], already: str) -> list[str]:
    """Call `method` for each program; one that is already where it is asked to go (fault `already`) is left
    out of the answer, any other refusal is a LabError."""
    done = []
    for name in names:
        try:
            sv.call(method, name, True, timeout_s=STOP_TIMEOUT_S)
            done.append(name)
        except xmlrpc.client.Fault as fault:
            if _fault_name(fault) != already:
                raise LabError(f"{verb} {name}: {fault.faultString}") from None
    return done


def stop_programs(sv: Supervisor, names: list[str]) -> list[str]:
    """Stop programs gracefully (SIGTERM, then their stopwaitsecs); those already stopped are left out."""
    return _each(sv, "stopProcess", "stopping", names, "NOT_RUNNING")


def start_programs(sv: Supervisor, names: list[str]) -> list[str]:
    """Start programs (a paused one is resumed first, or it would stay frozen); those running are left out."""
    resume(sv, [n for n in paused_programs(sv) if n in names])
    return _each(sv, "startProcess", "starting", names, "ALREADY_STARTED")


def wait_until(check: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Seconds until `check()` held; LabError naming `what` after `timeout_s`."""
    found, waited = poll(check, timeout_s, interval_s)
    if not found:
        raise LabError(f"{what} not within {timeout_s:g} s")
    return waited


def _isolated_spec(registry: dict[str, Any]) -> Any:
    """The spec of an isolated native lab (the one kind with kernel faults), else None."""
    if registry.get("network", {}).get("mode") != "isolated":
        return None
    from chaoslab.lab.spec import load_spec

    return load_spec(registry["state_dir"])


def kernel_faults(registry: dict[str, Any]) -> list[str]:
    """An isolated lab's kernel faults in place ("F3:delay"), found by record and by name (chaoslab.kernel)."""
    spec = _isolated_spec(registry)
    if spec is None:
        return []
    from chaoslab.kernel import inventory

    held = inventory.holdings(spec)
    found = [f"{f['id']}:{f['kind']}" for f in held["faults"]]
    if inventory.active(held) and not found:
        found.append("kernel objects without a record: " + ", ".join(
            k for k in ("rules", "qdiscs", "cgroups", "workers", "clocks") if held[k]))
    return found


def leftovers(registry: dict[str, Any], sv: Supervisor) -> dict[str, list[str]]:
    """Whatever a fault could have left behind: active in-service faults, paused or stopped programs, and an
    isolated lab's kernel faults."""
    listed = AdminClient.of(registry).list_faults(replicas_of(registry))
    faults = [f"{r['replica']}:{f['kind']}:{f['id']}" for r in listed for f in r.get("faults", [])]
    procs = process_faults(sv)
    found = {"faults": faults, "paused": procs["paused"], "stopped": procs["stopped"],
             "kernel": kernel_faults(registry)}
    return {k: v for k, v in found.items() if v}


def restore(registry: dict[str, Any], sv: Supervisor | None, timeout_s: float = RESTORE_TIMEOUT_S) -> dict[str, Any]:
    """Undo any fault of the catalogue: resume paused replicas, start stopped programs (the broker first, so the
    services reconnect to a broker that runs), wait until everything is ready, and clear every in-service fault
    (also after a timeout: never leave a fault). Without a supervisord (`sv` None: compose, where containers
    restart by their own policy) only the in-service faults are cleared and readiness awaited."""
    admin = AdminClient.of(registry)
    resumed: list[str] = []
    started: list[str] = []
    kernel: list[str] = []
    spec = _isolated_spec(registry)
    if spec is not None:  # traffic flows and clocks are right again before the rest is awaited
        from chaoslab.kernel import inventory

        kernel = list(inventory.sweep(spec)["records"])
    from chaoslab.lab import certfaults

    certificates = certfaults.clear_lab(registry)  # replicas with a bad certificate get their own back
    try:
        if sv is not None:
            resumed = resume(sv, paused_programs(sv))
            names = [p["name"] for p in sv.processes() if p["statename"] not in ("RUNNING", "STARTING")]
            names.sort(key=lambda n: n != BROKER)
            started = start_programs(sv, names)
            if BROKER in started:
                wait_until(lambda: broker_serving(registry), timeout_s, "the broker serving")
        waited = wait_until(lambda: all_ready(registry), timeout_s, "every replica ready", interval_s=0.5)
    finally:
        cleared = admin.clear_faults(replicas_of(registry))
    return {"resumed": resumed, "started": started, "ready_after_s": round(waited, 3),
            "faults_cleared": sum(r["cleared"] for r in cleared), "kernel_faults_ended": kernel,
            "certificate_faults_ended": certificates}
