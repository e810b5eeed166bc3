"""Chaos Toolkit actions of the chaoslab extension: every fault of the native catalogue, and its undoing.

Process faults go through the lab's supervisord; in-service faults through each replica's admin API, always
with a time-to-live, so a fault outlives neither a crashed experiment nor a missed rollback by more than its TTL.
`replica` is "all", null (one running replica at random), a replica number or a replica name.
Every function is synchronous, finds the lab through its configuration (chaoslab.chaos.lab) and returns
JSON-serialisable data for the journal.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslab.chaos import broker, marks
from chaoslab.chaos.lab import Configuration, Lab, Replica, activity_errors, select_replicas, service_of
from chaoslab.clients.admin import fault_body, replicas_of
from chaoslab.errors import LabError
from chaoslab.lab import faults
from chaoslab.lab.probes import broker_serving, ready_replicas
from services import contract

DEFAULT_TTL_S = 60.0


# -- process faults ----------------------------------------------------------------------------------------

def _signal(lab: Lab, service: str, sig: str, replica: Replica, what: str) -> list[dict[str, Any]]:
    sv = lab.supervisor(what)
    with activity_errors():
        if replica is None or replica == "random":
            # "one replica, at random" means one that can take the fault: a running one
            running = faults.running_programs(sv, [r["name"] for r in lab.replicas(service)])
            if not running:
                raise LabError(f"no running replica of {service}")
            targets = select_replicas({"services": {service: {"replicas": [{"name": n} for n in running]}}},
                                      service, None)
        else:
            targets = lab.select(service, replica)
        return [faults.signal(sv, r["name"], sig) for r in targets]


def _kill(service: str, replica: Replica, configuration: Configuration) -> list[dict[str, Any]]:
    lab = Lab.of(configuration)
    if lab.is_compose:
        # No process control in compose: the replica ends itself (exit 137) and its restart policy restarts it.
        with activity_errors():
            killed = lab.admin.crash(lab.select(service, replica))
    else:
        killed = _signal(lab, service, "KILL", replica, "kill_replica")
    marks.mark("fault", killed[0]["at"])
    return killed


def kill_replica(service: str, replica: Replica = None, configuration: Configuration = None) -> list[dict[str, Any]]:
    """SIGKILL one replica (a random running one by default); supervisord restarts it. In compose, the replica
    exits 137 through its admin API and the container's restart policy restarts it."""
    return _kill(service, replica, configuration)


def kill_service(service: str, configuration: Configuration = None) -> list[dict[str, Any]]:
    """SIGKILL every replica of a service at once; supervisord (or, in compose, the restart policy) restarts them."""
    return _kill(service, "all", configuration)


def pause_replica(service: str, replica: Replica = None, configuration: Configuration = None) -> list[dict[str, Any]]:
    """SIGSTOP a replica: it keeps its sockets but answers nothing (a hung process). Undo: resume_replicas."""
    paused = _signal(Lab.of(configuration), service, "STOP", replica, "pause_replica")
    marks.mark("fault", paused[0]["at"])
    return paused


def resume_replicas(service: str | None = None, configuration: Configuration = None) -> list[str]:
    """SIGCONT every paused replica (of `service`, or of the whole lab)."""
    sv = Lab.of(configuration).supervisor("resume_replicas")
    with activity_errors():
        paused = faults.paused_programs(sv)
        names = faults.resume(sv, [n for n in paused if service is None or service_of(n) == service])
    if names:
        marks.mark("recovery")
    return names


def stop_service(service: str, configuration: Configuration = None) -> list[str]:
    """Stop every replica of a service (SIGTERM, graceful); it stays down until start_service."""
    lab = Lab.of(configuration)
    sv = lab.supervisor("stop_service")
    marks.mark("fault")
    with activity_errors():
        return faults.stop_programs(sv, [r["name"] for r in lab.replicas(service)])


def start_service(service: str, timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Start every replica of a service that is not running, and wait until all are ready."""
    lab = Lab.of(configuration)
    sv = lab.supervisor("start_service")
    with activity_errors():
        started = faults.start_programs(sv, [r["name"] for r in lab.replicas(service)])
        marks.mark("recovery")
        waited = faults.wait_until(lambda: all(ready_replicas(lab.registry, service).values()), timeout_s,
                                   f"every replica of {service} ready")
    return {"service": service, "started": started, "ready_after_s": round(waited, 3)}


def stop_broker(configuration: Configuration = None) -> dict[str, Any]:
    """Stop the lab's RabbitMQ node (a broker outage)."""
    sv = Lab.of(configuration).supervisor("stop_broker")
    at = marks.mark("fault")
    with activity_errors():
        faults.stop_programs(sv, [faults.BROKER])
    return {"stopped": faults.BROKER, "at": at}


def start_broker(timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Start the lab's RabbitMQ node and wait until it takes connections again."""
    lab = Lab.of(configuration)
    sv = lab.supervisor("start_broker")
    with activity_errors():
        started = faults.start_programs(sv, [faults.BROKER])
        marks.mark("recovery")
        waited = faults.wait_until(lambda: broker_serving(lab.registry), timeout_s, "the broker serving")
    return {"started": started, "serving_after_s": round(waited, 3)}


# -- in-service faults (admin API) ---------------------------------------------------------------------------

def _inject(service: str, replica: Replica, kind: str, configuration: Configuration,
            **fields: Any) -> list[dict[str, Any]]:
    lab = Lab.of(configuration)
    targets = lab.select(service, replica)
    with activity_errors():
        result = lab.admin.add_fault(targets, fault_body(kind, **fields))
    marks.mark("fault")
    return result


def inject_latency(service: str, latency_ms: float, jitter_ms: float = 0.0, percent: float = 100.0,
                   route: str | None = None, upstream: str | None = None, ttl_s: float = DEFAULT_TTL_S,
                   replica: Replica = "all", configuration: Configuration = None) -> list[dict[str, Any]]:
    """Delay requests served by the service (or, with `upstream`, its calls to that upstream)."""
    return _inject(service, replica, "latency", configuration, latency_ms=latency_ms, jitter_ms=jitter_ms,
                   percent=percent, route=route, upstream=upstream, ttl_s=ttl_s)


def inject_errors(service: str, status: int = 503, percent: float = 100.0, route: str | None = None,
                  upstream: str | None = None, ttl_s: float = DEFAULT_TTL_S, replica: Replica = "all",
                  configuration: Configuration = None) -> list[dict[str, Any]]:
    """Answer a share of requests with an error status (or fail calls to `upstream`)."""
    return _inject(service, replica, "error", configuration, status=status, percent=percent, route=route,
                   upstream=upstream, ttl_s=ttl_s)


def inject_aborts(service: str, percent: float = 100.0, route: str | None = None, upstream: str | None = None,
                  ttl_s: float = DEFAULT_TTL_S, replica: Replica = "all",
                  configuration: Configuration = None) -> list[dict[str, Any]]:
    """Abort the connection of a share of requests (or of calls to `upstream`)."""
    return _inject(service, replica, "abort", configuration, percent=percent, route=route, upstream=upstream,
                   ttl_s=ttl_s)


def inject_cpu_burn(service: str, percent: float = 100.0, ttl_s: float = DEFAULT_TTL_S, replica: Replica = "all",
                    configuration: Configuration = None) -> list[dict[str, Any]]:
    """Burn CPU in the replica's process (`percent` duty cycle) until the TTL ends or the fault is cleared."""
    return _inject(service, replica, "cpu", configuration, percent=percent, ttl_s=ttl_s)


def clear_faults(service: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """Clear every in-service fault (of one service, or of every replica of the lab)."""
    lab = Lab.of(configuration)
    results = lab.admin.clear_faults(replicas_of(lab.registry, [service] if service else None))
    marks.mark("recovery")
    return {"cleared": sum(r["cleared"] for r in results),
            "unreachable": [r["replica"] for r in results if "error" in r]}


# -- messaging -----------------------------------------------------------------------------------------------

def publish_poison_message(routing_key: str = contract.ORDER_CREATED, body: str = '{"poison": true',
                           configuration: Configuration = None) -> dict[str, Any]:
    """Publish a message no consumer can process (by default: broken JSON) to the orders exchange."""
    result = broker.publish(Lab.of(configuration).registry, routing_key, body)
    marks.mark("fault")
    return result


def purge_queue(queue: str = contract.DEAD_LETTER_QUEUE, configuration: Configuration = None) -> dict[str, Any]:
    """Empty a queue (the dead-letter queue, after a poison message was looked at)."""
    purged = broker.queue_messages(Lab.of(configuration).registry, queue, purge=True)
    marks.mark("recovery")
    return {"queue": queue, "purged": purged}


# -- time ------------------------------------------------------------------------------------------------------

HOLD_STEP_S = 0.25


def hold(seconds: float, configuration: Configuration = None) -> dict[str, Any]:
    """Let the fault act for `seconds` (the load keeps running). Use it instead of a long `pauses` entry:
    chaosaddons' safeguard interrupts a run with a signal that Python handles in the main thread between two
    bytecodes, and a pause is one long time.sleep in that thread, which the signal does not always cut short
    (when it lands on another thread). Short steps let an interruption through within HOLD_STEP_S."""
    deadline = time.monotonic() + float(seconds)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(HOLD_STEP_S, left))
    return {"held_s": float(seconds)}


# -- the rollback of last resort -------------------------------------------------------------------------------

def restore_lab(timeout_s: float = 90.0, configuration: Configuration = None) -> dict[str, Any]:
    """Undo any fault of the catalogue: clear in-service faults, resume paused replicas, start stopped programs
    (the broker first), and wait until everything is ready. Every experiment's last rollback. In compose only
    the in-service faults can be undone here (containers restart by their own policy)."""
    lab = Lab.of(configuration)
    sv = None if lab.is_compose else lab.supervisor("restore_lab")
    with activity_errors():
        done = faults.restore(lab.registry, sv, timeout_s)
    if done["resumed"]:
        marks.mark("recovery")
    return done


__all__ = [
    "kill_replica", "kill_service", "pause_replica", "resume_replicas", "stop_service", "start_service",
    "stop_broker", "start_broker", "inject_latency", "inject_errors", "inject_aborts", "inject_cpu_burn",
    "clear_faults", "publish_poison_message", "purge_queue", "hold", "restore_lab",
]
