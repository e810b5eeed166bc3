"""Injecting the faults below the application into an isolated lab. Each function makes the fault's kernel
objects, records them (chaoslab.kernel.store: removal needs nothing else) and returns the record; the
attestations that show it took effect are in chaoslab.kernel.attest.

Targets name the lab's hosts: a service (`payments`: every replica it has now), a replica (`payments-2`),
`broker` (the RabbitMQ node) or `clients` (the host end of the bridge: Locust, the CLI, people). A network fault
acts on the traffic between `source` and `target` (an edge, e.g. orders -> payments), or on all of `target`'s
traffic with anyone when there is no source. `direction` is Chaos Mesh's: "to" (packets from the source to the
target), "from" (the answers), "both". The observer's ports (every admin port, RabbitMQ's metrics port) are never
touched: Prometheus keeps scraping what a fault hits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from chaoslab.errors import LabError
from chaoslab.kernel import clock, store
from chaoslab.kernel.store import Record
from chaoslab.lab import disks, iptables
from chaoslab.lab.network import BROKER_HOST, CLIENTS, netlink
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.programs import LAB_MARKER
from chaoslab.lab.spec import LabSpec
from chaoslab.lab.supervisor import Supervisor

Direction = Literal["to", "from", "both"]
DIRECTIONS = ("to", "from", "both")
CGROUP_ROOT = Path("/sys/fs/cgroup")
WORKER_READY_S = 10.0
FILLER_PREFIX = ".chaoslab-fill-"
BROKER_ALIASES = ("broker", BROKER_HOST)


# -- targets -------------------------------------------------------------------------------------------------------

def hosts(spec: LabSpec, name: str) -> list[str]:
    """The hosts a target names: a service's replicas, one replica, the broker, or the clients."""
    if name in BROKER_ALIASES:
        return [BROKER_HOST]
    if name == CLIENTS:
        return [CLIENTS]
    if name in SERVICES:
        found = spec.replica_names(name)
        if not found:
            raise LabError(f"{name} runs no replica in this lab")
        return found
    service, _, number = name.rpartition("-")
    if service in SERVICES and number.isdigit() and name in spec.replica_names(service):
        return [name]
    raise LabError(f"unknown target {name!r}: a service ({', '.join(SERVICES)}), a replica (orders-2), "
                   f"'broker' or '{CLIENTS}'")


def replica_hosts(spec: LabSpec, name: str) -> list[str]:
    found = hosts(spec, name)
    if any(h in (BROKER_HOST, CLIENTS) for h in found):
        raise LabError(f"{name!r} is not a service or a replica: this fault acts on a replica's process")
    return found


def _addresses(spec: LabSpec, name: str) -> list[str]:
    return [spec.net.address_of(h) for h in hosts(spec, name)]


def _pairs(spec: LabSpec, source: str | None, target: str, direction: str) -> list[str]:
    """iptables address matches for the traffic a fault acts on."""
    if direction not in DIRECTIONS:
        raise LabError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    targets = _addresses(spec, target)
    if source is None:
        out = []
        if direction in ("to", "both"):
            out += [f"-d {t}/32" for t in targets]
        if direction in ("from", "both"):
            out += [f"-s {t}/32" for t in targets]
        return out
    sources = _addresses(spec, source)
    if set(sources) & set(targets):
        raise LabError(f"{source!r} and {target!r} overlap: an edge joins two different hosts")
    out = []
    for s in sources:
        for t in targets:
            if direction in ("to", "both"):
                out.append(f"-s {s}/32 -d {t}/32")
            if direction in ("from", "both"):
                out.append(f"-s {t}/32 -d {s}/32")
    return out


def _comment(record: Record) -> str:
    edge = f"{record.target.get('source')}->{record.target['target']}" if record.target.get("source") \
        else record.target["target"]
    return f'-m comment --comment "chaoslab {record.id} {record.kind} {edge}"'


def _in_lab(spec: LabSpec) -> dict[str, str]:
    return {**os.environ, LAB_MARKER: str(spec.paths.state)}


def _spawn(spec: LabSpec, record: Record, command: list[str], log_name: str) -> int:
    """Start a helper of the fault in a session of its own (its group is ended with it), marked as the lab's."""
    log = spec.paths.log_file(f"{log_name}-{record.id}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                env=_in_lab(spec), start_new_session=True, cwd=str(spec.paths.state))
    return proc.pid


@contextlib.contextmanager
def _made(spec: LabSpec, record: Record) -> Any:
    """Inside: make the fault's objects (recording each as it is made); a failure removes what was made."""
    try:
        yield
        store.save(spec, record)
    except BaseException:
        store.save(spec, record)
        store.remove(spec, record.id)
        raise


# -- network: iptables ---------------------------------------------------------------------------------------------

def _install_rules(spec: LabSpec, record: Record, rules: list[str]) -> None:
    chain = f"{spec.net.faults_chain}{record.id[1:]}"
    record.objects.setdefault("chains", []).append(chain)
    store.save(spec, record)
    iptables.replace("filter", {chain: rules})
    store.relink(spec)


def network_fault(spec: LabSpec, kind: str, target: str, *, source: str | None = None, direction: str = "to",
                  ttl_s: float = 60.0, loss_percent: float = 0.0, delay_ms: float = 0.0,
                  jitter_ms: float = 0.0) -> Record:
    """kind: blackhole (DROP: a peer's connection hangs), reject (TCP reset), loss (random DROP of
    `loss_percent` of the packets), delay (`delay_ms` +- `jitter_ms` through an NFQUEUE worker)."""
    pairs = _pairs(spec, source, target, direction)
    params: dict[str, Any] = {}
    if kind == "loss":
        if not 0 < loss_percent <= 100:
            raise LabError("loss_percent must be in (0, 100]")
        params["loss_percent"] = loss_percent
    if kind == "delay":
        if delay_ms <= 0 or jitter_ms < 0 or jitter_ms > delay_ms:
            raise LabError("delay needs delay_ms > 0 and 0 <= jitter_ms <= delay_ms")
        params.update(delay_ms=delay_ms, jitter_ms=jitter_ms)
    if kind not in ("blackhole", "reject", "loss", "delay"):
        raise LabError(f"unknown network fault {kind!r}")
    record = store.new_record(spec, kind, {"source": source, "target": target, "direction": direction}, params,
                              ttl_s)
    with _made(spec, record):
        note = _comment(record)
        if kind == "delay":
            queue = _start_delay_worker(spec, record, delay_ms, jitter_ms, ttl_s)
        rules: list[str] = []
        for pair in pairs:
            if kind == "blackhole":
                rules.append(f"{pair} {note} -j DROP")
            elif kind == "reject":
                rules += [f"{pair} -p tcp {note} -j REJECT --reject-with tcp-reset", f"{pair} {note} -j DROP"]
            elif kind == "loss":
                rules += [f"{pair} {note}",  # counts every packet: the attestation's denominator
                          f"{pair} -m statistic --mode random --probability {loss_percent / 100:.4f} {note} -j DROP"]
            else:
                rules.append(f"{pair} {note} -j NFQUEUE --queue-num {queue} --queue-bypass")
        _install_rules(spec, record, rules)
    return record


def _start_delay_worker(spec: LabSpec, record: Record, delay_ms: float, jitter_ms: float, ttl_s: float) -> int:
    """Start the fault's NFQUEUE worker (chaoslab.kernel.delayq) and wait until it holds its queue: the queue
    number is the lab's base port plus the fault's number (mod 300), so labs never share one."""
    queue = spec.base_port + int(record.id[1:]) % 300
    record.params["queue"] = queue
    ready = store.folder(spec) / f"delayq-{record.id}.ready"
    stats = store.folder(spec) / f"delayq-{record.id}.jsonl"
    record.objects.setdefault("files", []).extend([str(ready), str(stats)])
    store.save(spec, record)
    pid = _spawn(spec, record, [sys.executable, "-m", "chaoslab.kernel.delayq", "--queue", str(queue),
                                "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                                "--ttl-s", str(ttl_s + 30), "--ready", str(ready), "--stats", str(stats)], "delayq")
    record.objects.setdefault("pids", []).append(pid)
    store.save(spec, record)
    deadline = time.monotonic() + WORKER_READY_S
    while not ready.exists():
        if time.monotonic() > deadline:
            raise LabError(f"the NFQUEUE delay worker did not bind queue {queue} within {WORKER_READY_S:g} s",
                           hint=f"its log: {spec.paths.log_file(f'delayq-{record.id}')}; it needs "
                                "libnetfilter-queue and the NetfilterQueue package (make setup)")
        time.sleep(0.05)
    return queue


def partition(spec: LabSpec, target: str, *, peers: list[str] | None = None, ttl_s: float = 60.0) -> Record:
    """Cut `target` off from `peers` (default: everyone, clients included), both ways: every connection hangs.
    With several peers, one record holds them all."""
    record = store.new_record(spec, "partition", {"source": None, "target": target, "direction": "both",
                                                   "peers": peers or []}, {}, ttl_s)
    with _made(spec, record):
        note = _comment(record)
        pairs = (_pairs(spec, None, target, "both") if not peers
                 else [p for peer in peers for p in _pairs(spec, peer, target, "both")])
        _install_rules(spec, record, [f"{pair} {note} -j DROP" for pair in pairs])
    return record


# -- network: bandwidth --------------------------------------------------------------------------------------------

def _htb(ipr: Any, link: str, rate_kbit: int, exempt_port: int, match_field: str) -> None:
    """htb at the root of `link`: every packet in class 1:10 at `rate_kbit`, but the observer's port (its
    `match_field`: dport or sport) in 1:20, unshaped."""
    index = ipr.link_lookup(ifname=link)[0]
    with contextlib.suppress(Exception):
        ipr.tc("del", index=index, root=True)
    ipr.tc("add", "htb", index=index, handle="1:", default=0x10)
    ipr.tc("add-class", "htb", index=index, handle="1:10", parent="1:", rate=f"{rate_kbit}kbit",
           ceil=f"{rate_kbit}kbit")
    ipr.tc("add-class", "htb", index=index, handle="1:20", parent="1:", rate="1000mbit", ceil="1000mbit")
    shift = 16 if match_field == "sport" else 0
    key = f"0x{exempt_port << shift:08x}/0x{0xffff << shift:08x}+20"
    ipr.tc("add-filter", "u32", index=index, parent="1:", prio=1, protocol=0x0800, target="1:20", keys=[key])


def limit_bandwidth(spec: LabSpec, target: str, *, rate_kbit: int, direction: str = "both",
                    ttl_s: float = 60.0) -> Record:
    """Cap the bandwidth of `target`'s link (each replica's): "to" shapes what it receives (the host end of its
    link), "from" what it sends (its eth0). htb, since tbf alone would shape the observer's scrapes too."""
    if direction not in DIRECTIONS:
        raise LabError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if rate_kbit < 8:
        raise LabError("rate_kbit must be at least 8")
    net = spec.net
    record = store.new_record(spec, "bandwidth", {"source": None, "target": target, "direction": direction},
                              {"rate_kbit": rate_kbit}, ttl_s)
    with _made(spec, record):
        for host in replica_hosts(spec, target) if target not in BROKER_ALIASES else [BROKER_HOST]:
            service, _, number = host.rpartition("-")
            port = (spec.ports.admin_port(service, int(number)) if host != BROKER_HOST
                    else spec.ports.rabbitmq_metrics)
            if direction in ("to", "both"):
                record.objects.setdefault("qdiscs", []).append(["", net.veth(host)])
                store.save(spec, record)
                with netlink() as ipr:
                    _htb(ipr, net.veth(host), rate_kbit, port, "dport")
            if direction in ("from", "both"):
                record.objects.setdefault("qdiscs", []).append([net.netns(host), "eth0"])
                store.save(spec, record)
                with netlink(net.netns(host)) as ns:
                    _htb(ns, "eth0", rate_kbit, port, "sport")
    return record


# -- resources: cgroups, stressors ---------------------------------------------------------------------------------

def replica_pid(spec: LabSpec, replica: str) -> int:
    info = Supervisor(spec.paths).process(replica)
    if info["statename"] != "RUNNING" or not info["pid"]:
        raise LabError(f"{replica} is {info['statename']}: no process to put under a limit")
    return int(info["pid"])


def _cgroup(spec: LabSpec, controller: str, replica: str, record: Record) -> Path:
    path = CGROUP_ROOT / controller / f"chaoslab-{spec.base_port}" / f"{replica}-{record.id}"
    if not (CGROUP_ROOT / controller).is_dir():
        raise LabError(f"no cgroup v1 {controller} controller at {CGROUP_ROOT / controller}")
    record.objects.setdefault("cgroups", []).append(str(path))
    store.save(spec, record)
    path.mkdir(parents=True, exist_ok=True)
    return path


def limit_memory(spec: LabSpec, target: str, *, headroom_mb: int = 16, stress_mb: int = 0,
                 ttl_s: float = 60.0) -> Record:
    """Put each replica of `target` in a memory cgroup limited to what it is charged now plus `headroom_mb`; with
    `stress_mb`, a stressor in the same cgroup takes that much (as Chaos Mesh's memory stressor with oomScoreAdj
    -1000), so the cgroup goes over its limit and the kernel OOM-kills the replica (supervisord restarts it,
    outside the cgroup: the limit was this process')."""
    record = store.new_record(spec, "memory", {"source": None, "target": target},
                              {"headroom_mb": headroom_mb, "stress_mb": stress_mb}, ttl_s)
    with _made(spec, record):
        for replica in replica_hosts(spec, target):
            pid = replica_pid(spec, replica)
            group = _cgroup(spec, "memory", replica, record)
            # Charge moving (memory touched before the move counted here too) is gone from newer kernels
            # (EINVAL): the limit then counts what the replica and the stressor take from now on, and the OOM
            # killer still picks the replica by its whole size.
            with contextlib.suppress(OSError):
                (group / "memory.move_charge_at_immigrate").write_text("3")
            (group / "cgroup.procs").write_text(str(pid))
            # the OOM killer's first choice in the cgroup, before the stressor (raising it needs no privilege)
            Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
            usage = int((group / "memory.usage_in_bytes").read_text())
            limit = usage + headroom_mb * 1024 * 1024
            (group / "memory.limit_in_bytes").write_text(str(limit))
            record.attestation.setdefault("replicas", {})[replica] = {"pid": pid, "usage_bytes": usage,
                                                                       "limit_bytes": limit}
            if stress_mb > 0:
                hog = _spawn(spec, record, [sys.executable, "-m", "chaoslab.kernel.hog", "--cgroup", str(group),
                                            "--mb", str(stress_mb), "--ttl-s", str(ttl_s + 30)], "hog")
                record.objects.setdefault("pids", []).append(hog)
            store.save(spec, record)
    return record


def throttle_cpu(spec: LabSpec, target: str, *, percent: float = 20.0, ttl_s: float = 60.0) -> Record:
    """CPU throttling: each replica of `target` in a cgroup with a CFS quota of `percent` of one CPU."""
    if not 1 <= percent <= 100:
        raise LabError("percent must be in [1, 100]")
    record = store.new_record(spec, "cpu", {"source": None, "target": target}, {"percent": percent}, ttl_s)
    with _made(spec, record):
        for replica in replica_hosts(spec, target):
            pid = replica_pid(spec, replica)
            group = _cgroup(spec, "cpu", replica, record)
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text(str(int(percent * 1000)))
            (group / "cgroup.procs").write_text(str(pid))
            record.attestation.setdefault("replicas", {})[replica] = {"pid": pid}
    return record


def stress_host(spec: LabSpec, *, cpu_workers: int = 2, cpu_load: int = 100, vm_mb: int = 0, io_workers: int = 0,
                ttl_s: float = 60.0) -> Record:
    """Host pressure with stress-ng (CPU, memory, IO), for the whole machine the lab runs on; stress-ng's own
    --timeout is the TTL too."""
    record = store.new_record(spec, "stress", {"source": None, "target": "host"},
                              {"cpu_workers": cpu_workers, "cpu_load": cpu_load, "vm_mb": vm_mb,
                               "io_workers": io_workers}, ttl_s)
    command = ["stress-ng", "--timeout", f"{int(ttl_s)}s", "--quiet"]
    if cpu_workers:
        command += ["--cpu", str(cpu_workers), "--cpu-load", str(cpu_load)]
    if vm_mb:
        command += ["--vm", "1", "--vm-bytes", f"{vm_mb}M", "--vm-keep"]
    if io_workers:
        command += ["--io", str(io_workers)]
    with _made(spec, record):
        record.objects.setdefault("pids", []).append(_spawn(spec, record, command, "stress-ng"))
    return record


# -- disk ----------------------------------------------------------------------------------------------------------

def fill_disk(spec: LabSpec, service: str, *, leave_bytes: int = 0, ttl_s: float = 60.0) -> Record:
    """Fill the service's data disk (chaoslab.lab.disks) until `leave_bytes` are free: the service's next write
    that needs a block fails with ENOSPC."""
    point = disks.mount_point(spec, service)
    if point not in disks.mounts_under(spec.paths.data):
        raise LabError(f"{service} has no data disk of its own mounted at {point}")
    record = store.new_record(spec, "disk", {"source": None, "target": service}, {"leave_bytes": leave_bytes},
                              ttl_s)
    filler = point / f"{FILLER_PREFIX}{record.id}"
    with _made(spec, record):
        record.objects.setdefault("files", []).append(str(filler))
        store.save(spec, record)
        free = os.statvfs(point).f_bavail * os.statvfs(point).f_frsize - leave_bytes
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with contextlib.suppress(OSError):
                os.posix_fallocate(fd, 0, max(0, free - 1024 * 1024))
            os.lseek(fd, 0, os.SEEK_END)
            size = 64 * 1024
            while leave_bytes == 0 and size >= 512:  # the last blocks, past what fallocate left: until ENOSPC
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    os.fsync(fd)  # what is in flight takes its blocks now, then smaller writes take the rest
                    size //= 2
            os.fsync(fd)
        finally:
            os.close(fd)
        stat = os.statvfs(point)
        record.attestation = {"free_bytes": stat.f_bavail * stat.f_frsize, "mount": str(point)}
    return record


# -- clock ---------------------------------------------------------------------------------------------------------

def skew_clock(spec: LabSpec, target: str, *, offset_s: float = 0.0, rate: float | None = None,
               ttl_s: float = 60.0) -> Record:
    """Move the wall clock of each replica of `target` by `offset_s` (and/or make it run `rate` times as fast),
    through its libfaketime file; undone by writing the real time back."""
    spec_text = clock.offset_spec(offset_s, rate)
    record = store.new_record(spec, "clock", {"source": None, "target": target},
                              {"offset_s": offset_s, "rate": rate}, ttl_s)
    with _made(spec, record):
        for replica in replica_hosts(spec, target):
            path = clock.clock_file(spec.paths, replica)
            record.objects.setdefault("clocks", []).append(str(path))
            store.save(spec, record)
            clock.write(path, spec_text)
    return record
