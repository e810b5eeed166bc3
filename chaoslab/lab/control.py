"""The lab's operations: up, down, scale, env, status, and ensure_running (a lab to work with, started or reused)
for the commands that need one (demo, gameday). The CLI calls these and renders what they report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chaoslab.clients.prometheus import Prometheus
from chaoslab.errors import ChaoslabError, LabError
from chaoslab.lab import certs, disks, network
from chaoslab.lab.binaries import find_binaries
from chaoslab.lab.lock import lab_lock
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.pki import DEFAULT_CERT_TTL_S, Pki
from chaoslab.lab.ports import DEFAULT_BASE_PORT, SERVICES
from chaoslab.lab.postgres import ensure_databases
from chaoslab.lab.preflight import check_ports, check_services, preflight_up
from chaoslab.lab.probes import http_ok, tcp_accepts
from chaoslab.lab.procs import describe, end_processes, lab_processes, wait_gone
from chaoslab.lab.programs import ENDPOINTS, Program, all_programs
from chaoslab.lab.registry import build_registry, write_registry
from chaoslab.lab.render import render_all, supervisord_conf, write_atomic, write_targets
from chaoslab.lab.spec import (
    MICROSERVICES,
    MONOLITH,
    LabSpec,
    default_replicas,
    existing_secrets,
    load_spec,
    monolith_replicas,
    parse_env,
    parse_monolith_count,
    parse_replicas,
)
from chaoslab.lab.supervisor import Supervisor, start_supervisord, supervisord_pid

DEFAULT_TIMEOUT_S = 180.0
POLL_S = 0.5
LOG_TAIL_LINES = 25
CRASHES_BEFORE_GIVING_UP = 3  # a program seen with this many different pids while `up` waits is broken


class Reporter(Protocol):
    def phase(self, text: str) -> None: ...

    def waiting(self, pending: list[str], done: int, total: int) -> None: ...


class QuietReporter:
    def phase(self, text: str) -> None:
        pass

    def waiting(self, pending: list[str], done: int, total: int) -> None:
        pass


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail)


# --- readiness -------------------------------------------------------------------------------------------

def _is_ready(program: Program) -> bool:
    return (all(tcp_accepts(port, host=program.ready_host) for port in program.ready_tcp)
            and http_ok(program.ready_url))


def wait_ready(sv: Supervisor, spec: LabSpec, programs: list[Program], timeout_s: float,
               reporter: Reporter) -> None:
    """Wait until every program answers its readiness probe; fail fast when one cannot start (FATAL)."""
    pending = {p.name: p for p in programs}
    total = len(programs)
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    pids: dict[str, set[int]] = {name: set() for name in pending}
    while pending:
        reporter.waiting(sorted(pending), total - len(pending), total)
        infos = {p["name"]: p for p in sv.processes()}
        states = {name: str(info["statename"]) for name, info in infos.items()}
        for name, program in list(pending.items()):
            state = states.get(name, "?")
            if infos.get(name, {}).get("pid"):
                pids[name].add(int(infos[name]["pid"]))
            if state == "FATAL" or len(pids[name]) > CRASHES_BEFORE_GIVING_UP:
                raise LabError(f"{name} keeps exiting instead of becoming ready "
                               f"({'supervisord gave up' if state == 'FATAL' else f'started {len(pids[name])} times'})",
                               hint=f"its log: chaoslab logs {name} --state-dir {spec.paths.state}",
                               details=log_tail(spec.paths.log_file(name)))
            if state == "RUNNING" and _is_ready(program):
                del pending[name]
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(f"{n} ({states.get(n, '?')})" for n in sorted(pending))
            tails = "\n".join(log_tail(spec.paths.log_file(n)) for n in sorted(pending)[:3])
            raise LabError(f"not ready within {timeout_s:.0f} s: {names}",
                           hint="a busy machine may need more time: --timeout; the logs: chaoslab logs NAME",
                           details=tails)
        time.sleep(POLL_S)
    reporter.waiting([], total, total)


# --- up and down -----------------------------------------------------------------------------------------

def up(state_dir: str | Path, base_port: int, replicas: dict[str, int], *,
       database_url_template: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
       reporter: Reporter | None = None, env: dict[str, dict[str, str]] | None = None,
       network_mode: str = network.LOOPBACK, tls: bool = True, cert_ttl_s: int = DEFAULT_CERT_TTL_S,
       topology: str = MICROSERVICES) -> dict[str, Any]:
    """Start a lab and wait until all of it is ready; on any failure, stop what started and raise.
    `env` overrides services' environment ({"*": {...}} for all, {"payments": {...}} for one). `network_mode`:
    "loopback" (no privileges) or "isolated" (every replica a host of its own: chaoslab.lab.network; root).
    `tls`: mutual TLS on every internal hop, certificates of the lab's CA living `cert_ttl_s` (chaoslab.lab.pki).
    `topology`: "microservices" or "monolith" (the six as modules of one process, N replicas of it: the largest
    count in `replicas`)."""
    with lab_lock(LabPaths.of(state_dir)):
        return _up(state_dir, base_port, replicas, database_url_template=database_url_template,
                   timeout_s=timeout_s, reporter=reporter, env=env or {}, network_mode=network_mode, tls=tls,
                   cert_ttl_s=cert_ttl_s, topology=topology)


def lab_hosts(spec: LabSpec) -> list[str]:
    """The hosts of an isolated lab's network: the broker and every replica."""
    return [network.BROKER_HOST] + [n for s in SERVICES for n in spec.replica_names(s)]


def _up(state_dir: str | Path, base_port: int, replicas: dict[str, int], *,
        database_url_template: str | None, timeout_s: float, reporter: Reporter | None,
        env: dict[str, dict[str, str]], network_mode: str, tls: bool, cert_ttl_s: int,
        topology: str = MICROSERVICES) -> dict[str, Any]:
    reporter = reporter or QuietReporter()
    paths = LabPaths.of(state_dir)
    if topology == MONOLITH:
        replicas = monolith_replicas(max(replicas.values(), default=1))
    spec = LabSpec(
        state_dir=paths.state, base_port=base_port, replicas=dict(replicas),
        database_url_template=database_url_template,
        env=env, network=network_mode, tls=tls, cert_ttl_s=cert_ttl_s, topology=topology,
        **existing_secrets(paths.state),  # else new ones: a lab's secrets are its own
    )
    reporter.phase("checking binaries, ports and the state dir")
    binaries = preflight_up(spec)
    paths.make_dirs()
    spec.save()
    if spec.isolated:
        reporter.phase(f"creating the lab's network {spec.net.subnet} and its data disks")
        try:
            release_kernel(spec)  # whatever a crashed lab on this base port left
            network.setup(spec.net, lab_hosts(spec))
            disks.mount_all(spec)
        except BaseException:
            release_kernel(spec)
            raise
    if spec.tls:
        reporter.phase("issuing the lab's certificates")
        certs.pki_of(spec).remove()  # a crashed lab's: every `up` starts with a CA of its own
        certs.issue_all(spec)
    programs = all_programs(spec, binaries)
    render_all(spec, programs)
    if database_url_template:
        reporter.phase("creating the services' databases")
        ensure_databases(spec)
    sv: Supervisor | None = None
    try:
        reporter.phase("starting supervisord")
        sv = start_supervisord(binaries.supervisord, paths)
        rabbit, rest = programs[0], programs[1:]
        reporter.phase("starting RabbitMQ")
        sv.start(rabbit.name)
        wait_ready(sv, spec, [rabbit], timeout_s, reporter)
        controller = [p for p in rest if p.name == ENDPOINTS]
        rest = [p for p in rest if p.name != ENDPOINTS]
        if controller:  # the service addresses are balanced before any replica calls another
            reporter.phase("starting the endpoints controller")
            sv.start(ENDPOINTS)
            wait_ready(sv, spec, controller, timeout_s, reporter)
        # Prometheus starts last, once every replica answers: started with them, it would scrape replicas
        # still booting and page ServiceDown for every service at each `up`.
        first = [p for p in rest if p.name != "prometheus"]
        last = [p for p in rest if p.name == "prometheus"]
        reporter.phase("starting Alertmanager, the webhook receiver and the services")
        for program in first:
            sv.start(program.name)
        wait_ready(sv, spec, first, timeout_s, reporter)
        reporter.phase("starting Prometheus")
        for program in last:
            sv.start(program.name)
        wait_ready(sv, spec, last, timeout_s, reporter)
        registry = build_registry(spec, sv.processes())
        write_registry(spec, registry)
        return registry
    except BaseException:
        reporter.phase("stopping what started")
        teardown(paths)
        if spec.isolated:
            release_kernel(spec)
        Pki(paths.pki).remove()
        raise


@dataclass
class DownResult:
    was_running: bool
    stopped: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)  # leftovers that had to be ended by pid
    kernel: dict[str, Any] = field(default_factory=dict)  # what of an isolated lab's kernel state was removed
    certificates: bool = False  # the lab's CA, certificates and keys were removed


def release_kernel(spec: LabSpec) -> dict[str, Any]:
    """Remove everything the lab holds in the kernel, found by its names: its faults (chaoslab.kernel), then its
    network (namespaces and what runs in them, links, the bridge, every chain), then its data disks. Nothing
    without privileges (an unprivileged user cannot have made any of it)."""
    import os

    removed: dict[str, Any] = {}
    if os.geteuid() != 0:
        return removed
    if spec.isolated:
        from chaoslab.kernel import inventory  # the fault machinery: only an isolated lab has any

        swept = {k: v for k, v in inventory.sweep(spec).items() if v}
        if swept:
            removed["faults"] = swept
    net = network.teardown(network.NetPlan(spec.base_port))
    if net:
        removed["network"] = net
    unmounted = disks.unmount_all(spec)
    if unmounted:
        removed["disks"] = unmounted
    return removed


def teardown(paths: LabPaths) -> DownResult:
    """Stop every program through supervisord, shut it down, then end any process of the lab still left."""
    sv = Supervisor(paths)
    result = DownResult(was_running=sv.is_running())
    if result.was_running:
        try:
            sv_pid = sv.pid()
            result.stopped = [p["name"] for p in sv.processes() if p["statename"] in ("RUNNING", "STARTING",
                                                                                   "BACKOFF")]
            sv.stop_all()
            sv.shutdown()
            wait_gone([sv_pid], 30.0)
        except Exception:  # supervisord misbehaves: the pid sweep below still ends everything
            pass
    else:
        pid = supervisord_pid(paths)
        if pid is not None:
            wait_gone([pid], 0.1)
    leftovers = lab_processes(paths.state)
    if leftovers:
        result.killed = [describe([p]).strip() for p in leftovers]
        still = end_processes(leftovers)
        if still:
            raise LabError(f"could not end these processes of the lab:\n{describe(still)}")
    if paths.socket.exists() and not Supervisor(paths).is_running():
        paths.socket.unlink(missing_ok=True)
    return result


def down(state_dir: str | Path) -> DownResult:
    paths = LabPaths.of(state_dir)
    with lab_lock(paths, create=False):
        result = teardown(paths)
        # No key outlives the lab: the next `up` makes a new CA and new certificates.
        result.certificates = Pki(paths.pki).remove()
        try:
            spec = load_spec(paths.state)
        except LabError:
            return result
        result.kernel = release_kernel(spec)
    write_registry(spec, build_registry(spec, [], probe=False))
    return result


# --- scale -----------------------------------------------------------------------------------------------

@dataclass
class ScaleResult:
    added: list[str]
    removed: list[str]
    replicas: dict[str, int]
    registry: dict[str, Any]


def running_supervisor(paths: LabPaths) -> Supervisor:
    sv = Supervisor(paths)
    if not sv.is_running():
        raise LabError(f"no lab runs in {paths.state}", hint=f"start one: chaoslab up --state-dir {paths.state}")
    return sv


def scale(state_dir: str | Path, items: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
          reporter: Reporter | None = None) -> ScaleResult:
    """Add or remove replica programs without touching any other program."""
    with lab_lock(LabPaths.of(state_dir)):
        return _scale(state_dir, items, timeout_s=timeout_s, reporter=reporter or QuietReporter())


def _scale(state_dir: str | Path, items: list[str], *, timeout_s: float, reporter: Reporter) -> ScaleResult:
    spec = load_spec(state_dir)
    paths = spec.paths
    sv = running_supervisor(paths)
    if spec.monolith:
        new = spec.with_replicas(monolith_replicas(parse_monolith_count(items, spec.monolith_count)))
    else:
        new = spec.with_replicas(parse_replicas(items, base=spec.replicas))
    check_services(new)
    # what supervisord runs: a replica each, or in a monolith one program per monolith replica
    old_names, new_names = set(spec.program_names()), set(new.program_names())
    added = [n for n in new.program_names() if n not in old_names]
    removed = [n for n in spec.program_names() if n not in new_names]
    fresh_ports = [(port, what) for port, what in new.ports.service_ports(new.replicas)
                   if port not in {p for p, _ in spec.ports.service_ports(spec.replicas)}]
    check_ports(new.ports, fresh_ports)

    if new.isolated:  # the new replicas' hosts and data disks before they start
        for name in added:
            network.add_host(new.net, name)
        disks.mount_all(new)
    if new.tls:  # and their certificates
        for name in added:
            certs.issue(new, name)
    programs = all_programs(new, find_binaries())
    by_name = {p.name: p for p in programs}
    # Prometheus stops scraping the leaving replicas before they stop, so no target is seen down
    kept = new.with_replicas({s: min(spec.replicas.get(s, 0), new.replicas.get(s, 0)) for s in SERVICES})
    write_targets(kept)
    new.save()
    write_atomic(paths.supervisord_conf, supervisord_conf(new, programs))
    reporter.phase("reloading supervisord's configuration")
    sv.reload_config()  # only reports what differs; the groups are added and removed below, one by one
    for name in removed:
        reporter.phase(f"stopping {name}")
        sv.remove_group(name)
        if new.isolated:
            network.remove_host(new.net, name)
    for name in added:
        sv.add_group(name)
        sv.start(name)
    if added:
        reporter.phase("waiting for the new replicas")
        wait_ready(sv, new, [by_name[n] for n in added], timeout_s, reporter)
    write_targets(new)
    registry = build_registry(new, sv.processes())
    write_registry(new, registry)
    return ScaleResult(added=added, removed=removed, replicas=dict(new.replicas), registry=registry)


# --- environment overrides -------------------------------------------------------------------------------

@dataclass
class EnvResult:
    env: dict[str, dict[str, str]]
    restarted: list[str]
    registry: dict[str, Any]


def set_env(state_dir: str | Path, items: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
            reporter: Reporter | None = None) -> EnvResult:
    """Change services' environment overrides (`[SVC:]KEY=VALUE`; an empty VALUE removes one) and restart the
    replicas whose environment changed, one at a time so that a service with several replicas stays up.
    New replicas (`scale`) start with the same overrides: they are kept in STATE/lab.json."""
    with lab_lock(LabPaths.of(state_dir)):
        reporter = reporter or QuietReporter()
        spec = load_spec(state_dir)
        sv = running_supervisor(spec.paths)
        new = spec.with_env(parse_env(items, base=spec.env))
        changed = [s for s in SERVICES if new.env_for(s) != spec.env_for(s)]
        programs = all_programs(new, find_binaries())
        by_name = {p.name: p for p in programs}
        new.save()
        write_atomic(spec.paths.supervisord_conf, supervisord_conf(new, programs))
        sv.reload_config()
        restarted: list[str] = []
        for name in new.program_names(changed):
            reporter.phase(f"restarting {name} with its new environment")
            sv.remove_group(name)
            sv.add_group(name)
            sv.start(name)
            wait_ready(sv, new, [by_name[name]], timeout_s, reporter)
            restarted.append(name)
        registry = build_registry(new, sv.processes())
        write_registry(new, registry)
        return EnvResult(env=new.env, restarted=restarted, registry=registry)


# --- status ----------------------------------------------------------------------------------------------

@dataclass
class Status:
    spec: LabSpec
    running: bool
    registry: dict[str, Any]
    processes: list[dict[str, Any]]  # supervisord's process info (start, now, pid, statename, description)
    alerts: list[dict[str, Any]] | None  # Prometheus' alerts, None when it does not answer


def status(state_dir: str | Path) -> Status:
    spec = load_spec(state_dir)
    sv = Supervisor(spec.paths)
    running = sv.is_running()
    processes = sv.processes() if running else []
    registry = build_registry(spec, processes, probe=running)
    write_registry(spec, registry)
    alerts = None
    if running:
        try:
            alerts = Prometheus(registry["prometheus_url"], timeout_s=3.0).alerts()
        except ChaoslabError:
            alerts = None  # Prometheus does not answer: the status says so
    return Status(spec=spec, running=running, registry=registry, processes=processes, alerts=alerts)


# --- a lab to work with ----------------------------------------------------------------------------------

def is_running(state_dir: str | Path) -> bool:
    paths = LabPaths.of(state_dir)
    return paths.lab_json.exists() and Supervisor(paths).is_running()


@dataclass
class Running:
    """A lab that ensure_running() found or started, and what it changed to make it fit."""

    state_dir: Path
    registry: dict[str, Any]
    started: bool  # it was started for this (else it was running already)
    scaled_from: dict[str, int] = field(default_factory=dict)  # replicas to go back to afterwards
    startup_s: float | None = None


def ensure_running(state_dir: str | Path, base_port: int | None, wanted: dict[str, int] | None = None, *,
                   restore: bool = False, reporter: Reporter | None = None,
                   network_mode: str | None = None) -> Running:
    """A running, ready lab with at least `wanted` replicas per service: the one running in `state_dir`
    (scaled up where it has fewer), else one started there (with the ports, overrides and database of the lab
    that ran there before, if any; `base_port` when given, else that lab's, else the default). With `restore`,
    whatever an interrupted run left behind (faults, paused or stopped programs) is undone first."""
    from chaoslab.lab import faults  # the fault machinery needs the clients; `up` and `down` do not

    wanted = dict(wanted or {})
    paths = LabPaths.of(state_dir)
    if is_running(state_dir):
        current = status(state_dir)
        if network_mode is not None and current.spec.network != network_mode:
            raise LabError(f"the lab in {paths.state} runs --network {current.spec.network}, this needs "
                           f"--network {network_mode}",
                           hint=f"chaoslab down --state-dir {paths.state}, then run this again (it starts one)")
        have = {s: len(v.get("replicas", [])) for s, v in current.registry["services"].items()}
        short = {s: n for s, n in wanted.items() if have.get(s, 0) < n}
        running = Running(paths.state, current.registry, started=False)
        if short:
            result = scale(state_dir, [f"{s}={n}" for s, n in short.items()], reporter=reporter)
            running.scaled_from = {s: have.get(s, 0) for s in short}
            running.registry = result.registry
        if restore:
            faults.restore(running.registry, faults.supervisor_of(state_dir))
        return running
    started = time.monotonic()
    if paths.lab_json.exists():
        spec = load_spec(state_dir)
        replicas = {s: max(n, wanted.get(s, 0)) for s, n in spec.replicas.items()}
        registry = up(state_dir, base_port or spec.base_port, replicas,
                      database_url_template=spec.database_url_template, env=spec.env, reporter=reporter,
                      network_mode=network_mode or spec.network, tls=spec.tls, cert_ttl_s=spec.cert_ttl_s)
    else:
        replicas = {**default_replicas(), **{s: max(n, 1) for s, n in wanted.items()}}
        registry = up(state_dir, base_port or DEFAULT_BASE_PORT, replicas, reporter=reporter,
                      network_mode=network_mode or network.LOOPBACK)
    return Running(paths.state, registry, started=True, startup_s=round(time.monotonic() - started, 1))


def give_back(running: Running, down_after: bool) -> list[str]:
    """Undo what ensure_running changed: the replicas it added; with `down_after`, a lab it started. What it
    did, in words."""
    done = []
    if running.scaled_from and not (down_after and running.started):
        try:
            scale(running.state_dir, [f"{s}={n}" for s, n in running.scaled_from.items()])
            done.append("scaled back to " + ", ".join(f"{s}={n}" for s, n in running.scaled_from.items()))
        except LabError as exc:
            done.append(f"could not scale back: {exc.message}")
    if down_after and running.started:
        down(running.state_dir)
        done.append("stopped the lab it started")
    return done
