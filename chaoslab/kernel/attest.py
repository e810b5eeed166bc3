"""Attestations: each kernel fault shown to have taken effect, measured from outside the code under test, so that
a verdict never passes on a fault that silently did nothing. attest() raises LabError when it did not.

| fault | what is measured |
| --- | --- |
| blackhole, partition | a TCP connection from the source's namespace to the target hangs (no answer in time) |
| reject | that connection is refused at once (a reset) |
| loss | the rule's own counters over generated connections: the share of packets dropped |
| delay | the TCP connect time (one SYN/SYN-ACK round trip) from the source's namespace, median of five |
| bandwidth | the htb class at the configured rate on every shaped link |
| memory | memory.oom_control's oom_kill count, and the replica running again under a new pid |
| cpu | cpu.stat: periods throttled |
| stress | stress-ng's workers running, and /proc/pressure/cpu |
| disk | statvfs: no free block on the service's disk |
| clock | the replica's own clock, read from the Date header of its admin port |
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import socket
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.kernel import store
from chaoslab.kernel.faults import BROKER_ALIASES, hosts
from chaoslab.kernel.store import Record
from chaoslab.lab import iptables
from chaoslab.lab.network import BROKER_HOST, CLIENTS
from chaoslab.lab.spec import LabSpec
from chaoslab.lab.supervisor import Supervisor

HANG_S = 2.0


def _connect(address: str, port: int, timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect((address, port))
        outcome = "connected"
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except OSError as exc:
        outcome = f"error: {exc.strerror or exc}"
    finally:
        sock.close()
    return {"outcome": outcome, "seconds": round(time.monotonic() - started, 4)}


def tcp_connect(spec: LabSpec, source: str, address: str, port: int, timeout_s: float = HANG_S) -> dict[str, Any]:
    """Open a TCP connection to address:port from `source`'s namespace (a host name; `clients`: this one):
    {"outcome": connected | timeout | refused | error..., "seconds"}."""
    if source == CLIENTS:
        return _connect(address, port, timeout_s)
    from pyroute2 import netns

    result: dict[str, Any] = {}

    def inside() -> None:  # a namespace is per thread: this one enters it, the caller's stays where it is
        netns.pushns(spec.net.netns(source))
        try:
            result.update(_connect(address, port, timeout_s))
        finally:
            netns.popns()

    thread = threading.Thread(target=inside, name=f"connect-from-{source}")
    thread.start()
    thread.join(timeout_s + 5)
    return result or {"outcome": "error: no answer from the probe", "seconds": timeout_s}


def endpoint(spec: LabSpec, host: str) -> tuple[str, int]:
    """Where a host serves its public traffic: a replica's service port, the broker's AMQP port."""
    if host == BROKER_HOST:
        return spec.net.broker_address, spec.ports.amqp
    service = host.rpartition("-")[0]
    return spec.net.address_of(host), spec.ports.service_port(service)


def _probe_pair(spec: LabSpec, record: Record) -> tuple[str, str]:
    """(source host, target host) a probe of this fault connects between."""
    target = record.target["target"]
    peers = record.target.get("peers") or []
    source = record.target.get("source") or (peers[0] if peers else None)
    target_host = hosts(spec, target)[0]
    if source is None:
        return CLIENTS, target_host
    source_host = hosts(spec, source)[0]
    if record.target.get("direction") == "from" and target not in BROKER_ALIASES and source != CLIENTS:
        return target_host, source_host
    return source_host, target_host


def _counters(spec: LabSpec, record: Record) -> tuple[int, int]:
    """(packets counted, packets dropped) by the fault's chain."""
    chain = f"{spec.net.faults_chain}{record.id[1:]}"
    rules = [r for r in iptables.rules("filter", chain) if r.chain == chain]
    dropped = sum(r.packets for r in rules if r.spec.endswith("-j DROP"))
    counted = sum(r.packets for r in rules if " -j " not in r.spec)
    return counted, dropped


def _network(spec: LabSpec, record: Record) -> dict[str, Any]:
    source, target = _probe_pair(spec, record)
    address, port = endpoint(spec, target)
    kind = record.kind
    if kind in ("blackhole", "partition"):
        seen = tcp_connect(spec, source, address, port, HANG_S)
        if seen["outcome"] != "timeout":
            raise LabError(f"{kind} {record.id} did not take effect: {source} -> {target} {seen['outcome']} "
                           f"in {seen['seconds']} s instead of hanging")
        return {"probe": f"{source} -> {target}:{port}", **seen}
    if kind == "reject":
        seen = tcp_connect(spec, source, address, port, HANG_S)
        if seen["outcome"] != "refused":
            raise LabError(f"reject {record.id} did not take effect: {source} -> {target} {seen['outcome']}")
        return {"probe": f"{source} -> {target}:{port}", **seen}
    if kind == "loss":
        for _ in range(40):  # connections of our own, so the counters have packets to count
            tcp_connect(spec, source, address, port, 0.3)
        counted, dropped = _counters(spec, record)
        if counted == 0 or dropped == 0:
            raise LabError(f"loss {record.id} did not take effect: {dropped} of {counted} packets dropped")
        return {"probe": f"{source} -> {target}:{port}", "packets": counted, "dropped": dropped,
                "measured_loss_percent": round(100 * dropped / counted, 1)}
    if kind == "delay":
        times = [tcp_connect(spec, source, address, port, 5.0)["seconds"] for _ in range(5)]
        median = statistics.median(times)
        expected = (record.params["delay_ms"] - record.params["jitter_ms"]) / 1000
        if median < 0.8 * expected:
            raise LabError(f"delay {record.id} did not take effect: connect time {median:.3f} s, expected at "
                           f"least {expected:.3f} s")
        return {"probe": f"{source} -> {target}:{port}", "connect_s_median": round(median, 4),
                "connect_s": times}
    raise LabError(f"no network attestation for {kind}")


def _bandwidth(spec: LabSpec, record: Record) -> dict[str, Any]:
    from chaoslab.lab.network import netlink

    seen = []
    for netns, link in record.objects.get("qdiscs", []):
        with netlink(netns or None) as ipr:
            index = ipr.link_lookup(ifname=link)[0]
            classes = {c.get("handle"): c for c in ipr.get_classes(index=index)}
            shaped = classes.get(0x10010)
            if shaped is None:
                raise LabError(f"bandwidth {record.id} did not take effect: no shaped class on {netns or 'host'} "
                               f"{link}")
            options = shaped.get("options")
            params = options.get("TCA_HTB_PARMS") if options is not None else None
            stats = shaped.get("stats2")
            basic = stats.get("TCA_STATS_BASIC") if stats is not None else None
            queue = stats.get("TCA_STATS_QUEUE") if stats is not None else None
            seen.append({"link": f"{netns or 'host'}:{link}",
                         "rate_kbit": round(int(params["rate"]) * 8 / 1000) if params else 0,
                         "bytes": int(basic["bytes"]) if basic else 0,
                         "overlimits": int(queue["overlimits"]) if queue else 0})
    want = record.params["rate_kbit"]
    if not seen or any(abs(s["rate_kbit"] - want) > max(2, want * 0.05) for s in seen):
        raise LabError(f"bandwidth {record.id} did not take effect: {seen}")
    return {"links": seen}


def _cgroup_file(record: Record, name: str) -> list[tuple[str, str]]:
    out = []
    for group in record.objects.get("cgroups", []):
        with contextlib.suppress(OSError):
            out.append((group, (Path(group) / name).read_text()))
    return out


def oom_kills(record: Record) -> int:
    total = 0
    for _, text in _cgroup_file(record, "memory.oom_control"):
        for line in text.splitlines():
            if line.startswith("oom_kill "):
                total += int(line.split()[1])
    return total


def _memory(spec: LabSpec, record: Record, wait_s: float) -> dict[str, Any]:
    sv = Supervisor(spec.paths)
    before = {r: v["pid"] for r, v in record.attestation.get("replicas", {}).items()}
    deadline = time.monotonic() + wait_s
    while True:
        kills = oom_kills(record)
        restarted = {}
        for replica, pid in before.items():
            with contextlib.suppress(Exception):
                info = sv.process(replica)
                if info["statename"] == "RUNNING" and int(info["pid"]) != pid:
                    restarted[replica] = int(info["pid"])
        if kills and len(restarted) == len(before):
            return {"oom_kills": kills, "restarted": restarted, "killed_pids": before}
        if time.monotonic() > deadline:
            if record.params.get("stress_mb"):
                raise LabError(f"memory {record.id} did not take effect within {wait_s:g} s: {kills} OOM kill(s), "
                               f"restarted: {restarted or 'none'}")
            failcnt = sum(int(t) for _, t in _cgroup_file(record, "memory.failcnt"))
            return {"oom_kills": kills, "limit_hits": failcnt, "limits": record.attestation.get("replicas")}
        time.sleep(0.2)


def _cpu(record: Record, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        stats = {}
        for group, text in _cgroup_file(record, "cpu.stat"):
            stats[group] = {k: int(v) for k, v in (line.split() for line in text.splitlines())}
        throttled = sum(s.get("nr_throttled", 0) for s in stats.values())
        if throttled:
            return {"nr_throttled": throttled,
                    "throttled_s": round(sum(s.get("throttled_time", 0) for s in stats.values()) / 1e9, 3)}
        if time.monotonic() > deadline:
            raise LabError(f"cpu {record.id} did not take effect within {wait_s:g} s: no period throttled (is the "
                           "replica busy? throttling shows under load)")
        time.sleep(0.2)


def _stress(record: Record, wait_s: float) -> dict[str, Any]:
    time.sleep(min(wait_s, 2.0))
    pids = record.objects.get("pids", [])
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 0)
            alive.append(pid)
    if not alive:
        raise LabError(f"stress {record.id} did not take effect: stress-ng is not running")
    pressure = Path("/proc/pressure/cpu").read_text().split("\n")[0] if Path("/proc/pressure/cpu").exists() else ""
    return {"stress_ng_pids": alive, "cpu_pressure": pressure, "loadavg": os.getloadavg()[0]}


def _disk(record: Record) -> dict[str, Any]:
    mount = record.attestation.get("mount") or str(Path(record.objects["files"][0]).parent)
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize  # ext4 may still count a few blocks that no file write gets
    probe = Path(mount) / f".chaoslab-probe-{record.id}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * (1024 * 1024))
            handle.flush()
            os.fsync(handle.fileno())
        enospc = False
    except OSError as exc:
        enospc = exc.errno == 28
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if record.params.get("leave_bytes", 0) == 0 and not enospc:
        raise LabError(f"disk {record.id} did not take effect: a 1 MiB write still fits on {mount} ({free} bytes "
                       "free)")
    return {"mount": mount, "free_bytes": free, "write_failed_enospc": enospc}


def replica_clock_offset(spec: LabSpec, replica: str) -> float:
    """The replica's wall clock minus this machine's, in seconds (+-1: a Date header has whole seconds)."""
    service, _, number = replica.rpartition("-")
    url = f"{spec.url(spec.ports.admin_port(service, int(number)), spec.replica_host(service, int(number)))}" \
          "/health/live"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    before = time.time()
    with opener.open(url, timeout=3.0) as resp:
        date = resp.headers["Date"]
    after = time.time()
    return email.utils.parsedate_to_datetime(date).timestamp() + 0.5 - (before + after) / 2


def _clock(spec: LabSpec, record: Record, wait_s: float) -> dict[str, Any]:
    want = float(record.params.get("offset_s") or 0.0)
    targets = [Path(p).name.removesuffix(".faketime") for p in record.objects.get("clocks", [])]
    deadline = time.monotonic() + wait_s
    while True:
        offsets = {r: round(replica_clock_offset(spec, r), 1) for r in targets}
        if record.params.get("rate"):
            return {"offsets_s": offsets}
        if all(abs(o - want) <= 2.0 for o in offsets.values()):
            return {"offsets_s": offsets}
        if time.monotonic() > deadline:
            raise LabError(f"clock {record.id} did not take effect: clocks off by {offsets}, wanted {want:+g} s")
        time.sleep(0.5)


def attest(spec: LabSpec, record: Record, wait_s: float = 10.0) -> dict[str, Any]:
    """Show that the fault took effect (see the table above); LabError when it did not. The result is saved in
    the fault's record."""
    if record.kind in ("blackhole", "reject", "loss", "delay", "partition"):
        seen = _network(spec, record)
    elif record.kind == "bandwidth":
        seen = _bandwidth(spec, record)
    elif record.kind == "memory":
        seen = _memory(spec, record, wait_s)
    elif record.kind == "cpu":
        seen = _cpu(record, wait_s)
    elif record.kind == "stress":
        seen = _stress(record, wait_s)
    elif record.kind == "disk":
        seen = _disk(record)
    elif record.kind == "clock":
        seen = _clock(spec, record, wait_s)
    else:
        raise LabError(f"no attestation for {record.kind}")
    with contextlib.suppress(LabError):
        current = store.get(spec, record.id)
        current.attestation = {**current.attestation, "seen": seen}
        store.save(spec, current)
    return seen
