"""Process faults through the lab's supervisord: kill (SIGKILL), pause (SIGSTOP/SIGCONT), stop and start.

supervisord restarts a killed replica by itself (autorestart), which is what "the replica is back within
seconds" measures; a stopped program stays down until started, which is what a service or broker outage is.
"""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psutil
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos.compose import needs_process_control
from chaoslab.chaos.registry import Configuration, load_registry, replicas, select_replicas, state_dir, target
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.probes import http_ok, tcp_accepts
from chaoslab.lab.supervisor import Supervisor

BROKER = "rabbitmq"
STOP_TIMEOUT_S = 90.0  # RabbitMQ's stopwaitsecs is 30; a replica's 20


def supervisor(configuration: Configuration = None, what: str = "this fault") -> Supervisor:
    if target(configuration) == "compose":
        raise needs_process_control(what)
    sv = Supervisor(LabPaths.of(state_dir(configuration)))
    if not sv.is_running():
        raise ActivityFailed(f"no supervisord answers for the lab in {state_dir(configuration)}")
    return sv


def _fault_name(fault: xmlrpc.client.Fault) -> str:
    return fault.faultString.split(":", 1)[0]


def signal(sv: Supervisor, name: str, sig: str) -> dict[str, Any]:
    """Send `sig` (KILL, STOP, CONT) to one program's process; its pid before the signal."""
    info = sv.process(name)
    if info["statename"] != "RUNNING":
        raise ActivityFailed(f"{name} is {info['statename']}, not RUNNING: nothing to signal")
    sv.call("signalProcess", name, sig)
    return {"name": name, "pid": int(info["pid"]), "signal": sig, "at": time.time()}


def signal_replicas(service: str, sig: str, replica: str | int | None,
                    configuration: Configuration = None) -> list[dict[str, Any]]:
    sv = supervisor(configuration, {"KILL": "kill_replica", "STOP": "pause_replica"}.get(sig, f"signal {sig}"))
    targets = select_replicas(load_registry(configuration), service, replica)
    if replica is None or replica == "random":
        # "one replica, at random" means one that can take the fault: a running one
        running = [r for r in replicas(load_registry(configuration), service)
                   if sv.process(r["name"])["statename"] == "RUNNING"]
        if not running:
            raise ActivityFailed(f"no running replica of {service}")
        targets = select_replicas({"services": {service: {"replicas": running}}}, service, None)
    return [signal(sv, r["name"], sig) for r in targets]


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


def process_faults(sv: Supervisor, service: str | None = None) -> dict[str, list[str]]:
    """Process faults in place now: paused programs, and programs stopped or given up by supervisord
    (a killed replica between its death and its restart is neither). Process faults have no TTL: this is
    how `chaoslab faults` and the runner find the ones a crashed experiment left."""
    def wanted(name: str) -> bool:
        return service is None or name.rsplit("-", 1)[0] == service

    stopped = [str(p["name"]) for p in sv.processes()
               if p["statename"] in ("STOPPED", "EXITED", "FATAL") and wanted(str(p["name"]))]
    return {"paused": [n for n in paused_programs(sv) if wanted(n)], "stopped": stopped}


def stop_programs(sv: Supervisor, names: list[str]) -> list[str]:
    stopped = []
    for name in names:
        try:
            sv.call("stopProcess", name, True, timeout_s=STOP_TIMEOUT_S)
            stopped.append(name)
        except xmlrpc.client.Fault as fault:
            if _fault_name(fault) != "NOT_RUNNING":
                raise ActivityFailed(f"stopping {name}: {fault.faultString}") from None
    return stopped


def start_programs(sv: Supervisor, names: list[str]) -> list[str]:
    started = []
    for name in names:
        # A paused process holds its program RUNNING: let it go on first, or it would stay frozen.
        if name in paused_programs(sv):
            sv.call("signalProcess", name, "CONT")
        try:
            sv.call("startProcess", name, True, timeout_s=STOP_TIMEOUT_S)
            started.append(name)
        except xmlrpc.client.Fault as fault:
            if _fault_name(fault) != "ALREADY_STARTED":
                raise ActivityFailed(f"starting {name}: {fault.faultString}") from None
    return started


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Seconds until `check()` held; ActivityFailed after `timeout_s`."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise ActivityFailed(f"{what} not within {timeout_s:g} s")
        time.sleep(interval_s)


def ready_replicas(reg: dict[str, Any], service: str) -> dict[str, bool]:
    """Each replica's own readiness (its /health/ready), asked now."""
    return {r["name"]: http_ok(f"{r['admin_url']}/health/ready", timeout_s=1.5) for r in replicas(reg, service)}


def broker_serving(reg: dict[str, Any]) -> bool:
    """The broker takes connections and serves its metrics (the Erlang VM alone is not enough)."""
    amqp = urlsplit(reg["broker"]["amqp_url"])
    return (tcp_accepts(amqp.port or 5672, host=amqp.hostname or "127.0.0.1")
            and http_ok(reg["broker"]["metrics_url"], timeout_s=2.0))
