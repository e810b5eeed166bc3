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

from chaoslab.chaos import broker, crash, marks
from chaoslab.chaos.lab import Configuration, Lab, Replica, activity_errors, select_replicas, service_of
from chaoslab.chaos.security import (  # the security faults: certificates, callers outside the call graph
    call_outside_graph,
    expire_certificate,
    impersonate,
    restore_certificates,
    untrust_certificate,
)
from chaoslab.clients.admin import fault_body, replicas_of
from chaoslab.errors import LabError
from chaoslab.lab import faults
from chaoslab.lab.probes import broker_serving, ready_replicas
from services import contract

DEFAULT_TTL_S = 60.0


# -- process faults ----------------------------------------------------------------------------------------

def _program(replica: dict[str, Any]) -> str:
    """The supervisord program a replica runs in: its own, or in a monolith lab the monolith replica holding it
    (killing "payments" there kills everything in that process)."""
    return str(replica.get("program") or replica["name"])


def _programs(replicas: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(_program(r) for r in replicas))


def _signal(lab: Lab, service: str, sig: str, replica: Replica, what: str) -> list[dict[str, Any]]:
    sv = lab.supervisor(what)
    with activity_errors():
        if replica is None or replica == "random":
            # "one replica, at random" means one that can take the fault: a running one
            running = faults.running_programs(sv, _programs(lab.replicas(service)))
            if not running:
                raise LabError(f"no running replica of {service}")
            targets = [r["name"] for r in select_replicas(
                {"services": {service: {"replicas": [{"name": n} for n in running]}}}, service, None)]
        else:
            targets = _programs(lab.select(service, replica))
        return [faults.signal(sv, name, sig) for name in targets]


def _kill(service: str, replica: Replica, configuration: Configuration) -> list[dict[str, Any]]:
    lab = Lab.of(configuration)
    if lab.is_compose:
        # No process control in compose: the replica ends itself (exit 137) and its restart policy restarts it.
        # The kill returns once it is gone, and the fault is marked then, not at the crash's answer.
        with activity_errors():
            killed = crash.crash(lab.admin, lab.select(service, replica))
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
        mine = None if service is None else set(_programs(Lab.of(configuration).replicas(service)))
        names = faults.resume(sv, [n for n in paused if mine is None or n in mine or service_of(n) == service])
    if names:
        marks.mark("recovery")
    return names


def stop_service(service: str, configuration: Configuration = None) -> list[str]:
    """Stop every replica of a service (SIGTERM, graceful); it stays down until start_service."""
    lab = Lab.of(configuration)
    sv = lab.supervisor("stop_service")
    marks.mark("fault")
    with activity_errors():
        return faults.stop_programs(sv, _programs(lab.replicas(service)))


def start_service(service: str, timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Start every replica of a service that is not running, and wait until all are ready."""
    lab = Lab.of(configuration)
    sv = lab.supervisor("start_service")
    with activity_errors():
        started = faults.start_programs(sv, _programs(lab.replicas(service)))
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


# -- below the application (an isolated lab: chaoslab.kernel) ---------------------------------------------------

def _below(what: str, configuration: Configuration, inject: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Inject a kernel fault and attest that it took effect before going on: a fault that did nothing raises
    (and is removed), so no verdict can pass on it. The result names the fault, its TTL and what was measured."""
    from chaoslab.kernel import attest, store

    spec = Lab.of(configuration).isolated(what)
    with activity_errors():
        record = inject(spec, *args, **kwargs)
        marks.mark("fault", record.created_at)
        try:
            seen = attest.attest(spec, record)
        except BaseException:
            store.remove(spec, record.id)
            raise
    return {"fault": record.id, "kind": record.kind, "target": record.target, "params": record.params,
            "ttl_s": round(record.expires_at - record.created_at, 1), "attestation": seen}


def _target(service: str, replica: Replica) -> str:
    """A kernel fault's target: the whole service ("all"), or one replica (a number or a name)."""
    if replica in ("all", None):
        return service
    return f"{service}-{replica}" if isinstance(replica, int) or str(replica).isdigit() else str(replica)


def blackhole(target: str, source: str | None = None, direction: str = "to", ttl_s: float = DEFAULT_TTL_S,
              configuration: Configuration = None) -> dict[str, Any]:
    """Drop every packet from `source` to `target` (or all of `target`'s traffic): connections hang instead of
    failing. Targets: a service, a replica (orders-2), "broker", "clients"."""
    from chaoslab.kernel.faults import network_fault

    return _below("blackhole", configuration, network_fault, "blackhole", target, source=source,
                  direction=direction, ttl_s=ttl_s)


def reject_connections(target: str, source: str | None = None, direction: str = "to", ttl_s: float = DEFAULT_TTL_S,
                       configuration: Configuration = None) -> dict[str, Any]:
    """Answer every TCP packet from `source` to `target` with a reset: connections fail at once."""
    from chaoslab.kernel.faults import network_fault

    return _below("reject_connections", configuration, network_fault, "reject", target, source=source,
                  direction=direction, ttl_s=ttl_s)


def lose_packets(target: str, percent: float, source: str | None = None, direction: str = "both",
                 ttl_s: float = DEFAULT_TTL_S, configuration: Configuration = None) -> dict[str, Any]:
    """Drop `percent` of the packets between `source` and `target`, at random (TCP retransmits: RTO stalls)."""
    from chaoslab.kernel.faults import network_fault

    return _below("lose_packets", configuration, network_fault, "loss", target, source=source, direction=direction,
                  ttl_s=ttl_s, loss_percent=float(percent))


def delay_packets(target: str, delay_ms: float, jitter_ms: float = 0.0, source: str | None = None,
                  direction: str = "to", ttl_s: float = DEFAULT_TTL_S,
                  configuration: Configuration = None) -> dict[str, Any]:
    """Hold every packet from `source` to `target` for `delay_ms` +- `jitter_ms` (NFQUEUE: no netem here)."""
    from chaoslab.kernel.faults import network_fault

    return _below("delay_packets", configuration, network_fault, "delay", target, source=source,
                  direction=direction, ttl_s=ttl_s, delay_ms=float(delay_ms), jitter_ms=float(jitter_ms))


def limit_bandwidth(target: str, rate_kbit: int, direction: str = "both", ttl_s: float = DEFAULT_TTL_S,
                    configuration: Configuration = None) -> dict[str, Any]:
    """Cap the bandwidth of `target`'s link (htb; its admin port stays unshaped for the observer)."""
    from chaoslab.kernel.faults import limit_bandwidth as cap

    return _below("limit_bandwidth", configuration, cap, target, rate_kbit=int(rate_kbit), direction=direction,
                  ttl_s=ttl_s)


def partition(target: str, peers: list[str] | None = None, ttl_s: float = DEFAULT_TTL_S,
              configuration: Configuration = None) -> dict[str, Any]:
    """Cut `target` off from `peers` (default: from every other host, clients included), both ways."""
    from chaoslab.kernel.faults import partition as cut

    return _below("partition", configuration, cut, target, peers=peers, ttl_s=ttl_s)


def cut_broker(services: list[str] | None = None, ttl_s: float = DEFAULT_TTL_S,
               configuration: Configuration = None) -> dict[str, Any]:
    """Partition the broker from its publishers and consumers (default: orders and notifications)."""
    from chaoslab.kernel.faults import partition as cut

    return _below("cut_broker", configuration, cut, "broker",
                  peers=list(services or [contract.ORDERS.name, contract.NOTIFICATIONS.name]), ttl_s=ttl_s)


def limit_memory(service: str, replica: Replica = 1, headroom_mb: int = 16, stress_mb: int = 0,
                 ttl_s: float = DEFAULT_TTL_S, configuration: Configuration = None) -> dict[str, Any]:
    """A memory limit the kernel enforces (cgroup v1): what the replica uses now plus `headroom_mb`; with
    `stress_mb`, a stressor in the same cgroup takes that much and the kernel OOM-kills the replica (attested by
    the OOM counter and its restart under a new pid)."""
    from chaoslab.kernel.faults import limit_memory as limit

    return _below("limit_memory", configuration, limit, _target(service, replica), headroom_mb=int(headroom_mb),
                  stress_mb=int(stress_mb), ttl_s=ttl_s)


def throttle_cpu(service: str, percent: float = 20.0, replica: Replica = "all", ttl_s: float = DEFAULT_TTL_S,
                 configuration: Configuration = None) -> dict[str, Any]:
    """CPU throttling by the kernel (a cgroup v1 CFS quota of `percent` of one CPU)."""
    from chaoslab.kernel.faults import throttle_cpu as throttle

    return _below("throttle_cpu", configuration, throttle, _target(service, replica), percent=float(percent),
                  ttl_s=ttl_s)


def stress_host(cpu_workers: int = 2, cpu_load: int = 100, vm_mb: int = 0, io_workers: int = 0,
                ttl_s: float = DEFAULT_TTL_S, configuration: Configuration = None) -> dict[str, Any]:
    """Host CPU, memory and IO pressure with stress-ng, for `ttl_s`."""
    from chaoslab.kernel.faults import stress_host as stress

    return _below("stress_host", configuration, stress, cpu_workers=int(cpu_workers), cpu_load=int(cpu_load),
                  vm_mb=int(vm_mb), io_workers=int(io_workers), ttl_s=ttl_s)


def fill_disk(service: str, ttl_s: float = DEFAULT_TTL_S, configuration: Configuration = None) -> dict[str, Any]:
    """Fill the service's own data disk: its next write fails with ENOSPC."""
    from chaoslab.kernel.faults import fill_disk as fill

    return _below("fill_disk", configuration, fill, service, ttl_s=ttl_s)


def skew_clock(service: str, offset_s: float = 0.0, rate: float | None = None, replica: Replica = "all",
               ttl_s: float = DEFAULT_TTL_S, configuration: Configuration = None) -> dict[str, Any]:
    """Move the replicas' wall clock by `offset_s` (and/or make it run `rate` times as fast): libfaketime."""
    from chaoslab.kernel.faults import skew_clock as skew

    return _below("skew_clock", configuration, skew, _target(service, replica), offset_s=float(offset_s),
                  rate=None if rate is None else float(rate), ttl_s=ttl_s)


def end_kernel_faults(kind: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """End the lab's kernel faults (of one kind, or all) now, before their TTL."""
    from chaoslab.kernel import store

    spec = Lab.of(configuration).isolated("end_kernel_faults")
    with activity_errors():
        ended = [store.remove(spec, r.id) for r in store.records(spec) if kind is None or r.kind == kind]
    marks.mark("recovery")
    return {"ended": [r.id for r in ended if r is not None]}


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
    "blackhole", "reject_connections", "lose_packets", "delay_packets", "limit_bandwidth", "partition", "cut_broker",
    "limit_memory", "throttle_cpu", "stress_host", "fill_disk", "skew_clock", "end_kernel_faults",
    "expire_certificate", "untrust_certificate", "impersonate", "restore_certificates", "call_outside_graph",
]
