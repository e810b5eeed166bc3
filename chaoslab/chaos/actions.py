"""Chaos Toolkit actions of the chaoslab extension: every fault of the native catalog, and its undoing.

Process faults go through the lab's supervisord; in-service faults through each replica's admin API, always
with a time-to-live, so a fault outlives neither a crashed experiment nor a missed rollback by more than its TTL.
`replica` is "all", null (one running replica at random), a replica number or a replica name.
Every function is synchronous and returns JSON-serialisable data for the journal.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslab.chaos import admin, broker, marks, supervise
from chaoslab.chaos.compose import is_compose
from chaoslab.chaos.registry import Configuration, load_registry, replicas, select_replicas, service_of

DEAD_LETTER_QUEUE = "notifications.dead-letter"
DEFAULT_TTL_S = 60.0

Replica = str | int | None


# -- process faults ----------------------------------------------------------------------------------------

def _kill(service: str, replica: Replica, configuration: Configuration) -> list[dict[str, Any]]:
    reg = load_registry(configuration)
    if is_compose(reg):
        # No process control in compose: the replica ends itself (exit 137) and its restart policy restarts it.
        killed = admin.crash(reg, select_replicas(reg, service, replica))
    else:
        killed = supervise.signal_replicas(service, "KILL", replica, configuration)
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
    paused = supervise.signal_replicas(service, "STOP", replica, configuration)
    marks.mark("fault", paused[0]["at"])
    return paused


def resume_replicas(service: str | None = None, configuration: Configuration = None) -> list[str]:
    """SIGCONT every paused replica (of `service`, or of the whole lab)."""
    sv = supervise.supervisor(configuration, "resume_replicas")
    names = [n for n in supervise.paused_programs(sv) if service is None or service_of(n) == service]
    for name in names:
        sv.call("signalProcess", name, "CONT")
    if names:
        marks.mark("recovery")
    return names


def stop_service(service: str, configuration: Configuration = None) -> list[str]:
    """Stop every replica of a service (SIGTERM, graceful); it stays down until start_service."""
    reg = load_registry(configuration)
    sv = supervise.supervisor(configuration, "stop_service")
    marks.mark("fault")
    return supervise.stop_programs(sv, [r["name"] for r in replicas(reg, service)])


def start_service(service: str, timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Start every replica of a service that is not running, and wait until all are ready."""
    reg = load_registry(configuration)
    sv = supervise.supervisor(configuration, "start_service")
    started = supervise.start_programs(sv, [r["name"] for r in replicas(reg, service)])
    marks.mark("recovery")
    waited = supervise.wait_until(lambda: all(supervise.ready_replicas(reg, service).values()), timeout_s,
                                  f"every replica of {service} ready")
    return {"service": service, "started": started, "ready_after_s": round(waited, 3)}


def stop_broker(configuration: Configuration = None) -> dict[str, Any]:
    """Stop the lab's RabbitMQ node (a broker outage)."""
    sv = supervise.supervisor(configuration, "stop_broker")
    at = marks.mark("fault")
    supervise.stop_programs(sv, [supervise.BROKER])
    return {"stopped": supervise.BROKER, "at": at}


def start_broker(timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Start the lab's RabbitMQ node and wait until it takes connections again."""
    reg = load_registry(configuration)
    sv = supervise.supervisor(configuration, "start_broker")
    started = supervise.start_programs(sv, [supervise.BROKER])
    marks.mark("recovery")
    waited = supervise.wait_until(lambda: supervise.broker_serving(reg), timeout_s, "the broker serving")
    return {"started": started, "serving_after_s": round(waited, 3)}


# -- in-service faults (admin API) ---------------------------------------------------------------------------

def _inject(service: str, replica: Replica, kind: str, configuration: Configuration,
            **fields: Any) -> list[dict[str, Any]]:
    reg = load_registry(configuration)
    targets = select_replicas(reg, service, replica)
    result = admin.add_fault(reg, targets, admin.fault_body(kind, **fields))
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
    reg = load_registry(configuration)
    results = admin.clear_faults(reg, admin.all_replicas(reg, [service] if service else None))
    marks.mark("recovery")
    return {"cleared": sum(r["cleared"] for r in results),
            "unreachable": [r["replica"] for r in results if "error" in r]}


# -- messaging -----------------------------------------------------------------------------------------------

def publish_poison_message(routing_key: str = "order.created", body: str = '{"poison": true',
                           configuration: Configuration = None) -> dict[str, Any]:
    """Publish a message no consumer can process (by default: broken JSON) to the orders exchange."""
    result = broker.publish(load_registry(configuration), routing_key, body)
    marks.mark("fault")
    return result


def purge_queue(queue: str = DEAD_LETTER_QUEUE, configuration: Configuration = None) -> dict[str, Any]:
    """Empty a queue (the dead-letter queue, after a poison message was looked at)."""
    purged = broker.queue_messages(load_registry(configuration), queue, purge=True)
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
    """Undo any fault of the catalog: clear in-service faults, resume paused replicas, start stopped programs
    (the broker first), and wait until everything is ready. Every experiment's last rollback."""
    reg = load_registry(configuration)
    if is_compose(reg):
        return _restore_compose(reg, timeout_s)
    sv = supervise.supervisor(configuration)
    resumed = resume_replicas(configuration=configuration)
    names = [p["name"] for p in sv.processes() if p["statename"] not in ("RUNNING", "STARTING")]
    names.sort(key=lambda n: n != supervise.BROKER)  # services reconnect to a broker that already runs
    started = supervise.start_programs(sv, names)
    if supervise.BROKER in started:
        supervise.wait_until(lambda: supervise.broker_serving(reg), timeout_s, "the broker serving")

    def all_ready() -> bool:
        return all(all(supervise.ready_replicas(reg, s).values()) for s in reg["services"])

    try:
        waited = supervise.wait_until(all_ready, timeout_s, "every replica ready", interval_s=0.5)
    finally:
        cleared = admin.clear_faults(reg, admin.all_replicas(reg))  # also after a timeout: never leave a fault
    return {"resumed": resumed, "started": started, "ready_after_s": round(waited, 3),
            "faults_cleared": sum(r["cleared"] for r in cleared)}


def _restore_compose(reg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """In compose only in-service faults can be undone here (containers restart by their own policy):
    clear them, then wait until every replica that resolves is ready."""
    cleared = admin.clear_faults(reg, admin.all_replicas(reg))

    def all_ready() -> bool:
        return all(all(supervise.ready_replicas(reg, s).values()) for s in reg["services"])

    waited = supervise.wait_until(all_ready, timeout_s, "every replica ready", interval_s=0.5)
    return {"resumed": [], "started": [], "ready_after_s": round(waited, 3),
            "faults_cleared": sum(r["cleared"] for r in cleared)}


__all__ = [
    "kill_replica", "kill_service", "pause_replica", "resume_replicas", "stop_service", "start_service",
    "stop_broker", "start_broker", "inject_latency", "inject_errors", "inject_aborts", "inject_cpu_burn",
    "clear_faults", "publish_poison_message", "purge_queue", "hold", "restore_lab",
]
