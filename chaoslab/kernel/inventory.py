"""What the kernel holds for a lab's faults, found by name rather than by record (so it sees what a crash left),
and sweeping it: `chaoslab faults` lists it, `chaoslab faults --clear` and `chaoslab down` clear it.

- rules: the lab's fault chains (`CHAOSLAB-<B>-F<n>`) with their packet counters;
- qdiscs: a root qdisc other than the default on a lab link (the host ends `cl<B>h*`, each namespace's eth0);
- cgroups: everything under `/sys/fs/cgroup/<controller>/chaoslab-<B>/`;
- mounts: the lab's data disks (chaoslab.lab.disks) with their free space, and filler files on them;
- workers: the lab's helper processes (NFQUEUE delay workers, memory stressors, stress-ng);
- clocks: replicas whose clock file is not the real time.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import psutil

from chaoslab.kernel import clock, store
from chaoslab.kernel.faults import CGROUP_ROOT, FILLER_PREFIX
from chaoslab.lab import disks, iptables
from chaoslab.lab.procs import lab_processes
from chaoslab.lab.spec import LabSpec

WORKER_MARKS = ("chaoslab.kernel.delayq", "chaoslab.kernel.hog", "stress-ng")
DEFAULT_QDISCS = {"noqueue", "pfifo_fast", "mq", "fq_codel", "noop"}


def _privileged() -> bool:
    return os.geteuid() == 0


def rules(spec: LabSpec) -> list[dict[str, Any]]:
    if not (_privileged() and iptables.available()):
        return []
    net = spec.net
    return [{"chain": r.chain, "rule": r.spec, "packets": r.packets, "bytes": r.bytes}
            for r in iptables.rules("filter", net.faults_chain) if net.is_fault_chain(r.chain)]


def qdiscs(spec: LabSpec) -> list[dict[str, Any]]:
    from pyroute2 import netns

    from chaoslab.lab.network import netlink

    net = spec.net
    found = []
    with netlink() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname") or ""
            if name.startswith(net.link_prefix) and name != net.bridge:
                found += _qdiscs_of(ipr, link["index"], "", name)
    for name in netns.listnetns():
        if name.startswith(net.netns_prefix):
            with contextlib.suppress(Exception), netlink(name) as ns:
                for index in ns.link_lookup(ifname="eth0"):
                    found += _qdiscs_of(ns, index, name, "eth0")
    return found


def _qdiscs_of(ipr: Any, index: int, netns: str, link: str) -> list[dict[str, Any]]:
    out = []
    for qdisc in ipr.get_qdiscs(index=index):
        kind = qdisc.get("kind")
        if qdisc.get("parent") == 0xFFFFFFFF and kind not in DEFAULT_QDISCS:
            stats = qdisc.get("stats2") or {}
            basic = stats.get("stats_basic") or {}
            queue = stats.get("stats_queue") or {}
            out.append({"netns": netns, "link": link, "kind": kind, "bytes": basic.get("bytes", 0),
                        "packets": basic.get("packets", 0), "overlimits": queue.get("overlimits", 0),
                        "drops": queue.get("drops", 0)})
    return out


def cgroups(spec: LabSpec) -> list[str]:
    found = []
    if not CGROUP_ROOT.is_dir():
        return found
    for controller in CGROUP_ROOT.iterdir():
        lab = controller / f"chaoslab-{spec.base_port}"
        if lab.is_dir():
            found.append(str(lab))
            found += sorted(str(p) for p in lab.iterdir() if p.is_dir())
    return found


def mounts(spec: LabSpec) -> list[dict[str, Any]]:
    out = []
    for point in disks.mounts_under(spec.paths.data):
        stat = os.statvfs(point)
        fillers = sorted(p.name for p in point.glob(f"{FILLER_PREFIX}*"))
        out.append({"mount": str(point), "size_bytes": stat.f_blocks * stat.f_frsize,
                    "free_bytes": stat.f_bavail * stat.f_frsize, "fillers": fillers})
    return out


def workers(spec: LabSpec) -> list[dict[str, Any]]:
    out = []
    for proc in lab_processes(spec.paths.state):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if any(mark in cmd for mark in WORKER_MARKS):
                out.append({"pid": proc.pid, "command": cmd[:160]})
    return out


def holdings(spec: LabSpec) -> dict[str, Any]:
    """Everything the kernel holds for the lab's faults, plus the fault records with their remaining TTL."""
    return {
        "faults": [{**r.to_json(), "ttl_left_s": round(r.ttl_left_s, 1)} for r in store.records(spec)],
        "rules": rules(spec),
        "qdiscs": qdiscs(spec) if _privileged() else [],
        "cgroups": cgroups(spec),
        "mounts": mounts(spec),
        "workers": workers(spec),
        "clocks": clock.skewed(spec.paths),
    }


def active(holding: dict[str, Any]) -> bool:
    """Does `holding` show any fault in place (the data disks alone are the lab's, not a fault)?"""
    return bool(holding["faults"] or holding["rules"] or holding["qdiscs"] or holding["cgroups"]
                or holding["workers"] or holding["clocks"] or any(m["fillers"] for m in holding["mounts"]))


def sweep(spec: LabSpec) -> dict[str, Any]:
    """End every fault of the lab: the records first, then whatever the kernel still holds by the lab's names.
    What was found and ended."""
    ended = [r.id for r in store.remove_all(spec)]
    found = holdings(spec)
    if found["rules"] or store.fault_chains(spec):
        chains = store.fault_chains(spec)
        store.remove_objects(spec, {"chains": chains})
    for item in found["qdiscs"]:
        store.remove_qdisc(item["netns"], item["link"])
    for worker in found["workers"]:
        store.end_process(int(worker["pid"]))
    for path in sorted(found["cgroups"], key=len, reverse=True):
        store.remove_cgroup(path)
    for mount in found["mounts"]:
        for name in mount["fillers"]:
            with contextlib.suppress(OSError):
                (Path(mount["mount"]) / name).unlink()
    for replica in found["clocks"]:
        clock.write(clock.clock_file(spec.paths, replica), clock.NEUTRAL)
    return {"records": ended, **{k: v for k, v in found.items() if k != "faults" and k != "mounts"},
            "fillers": [f for m in found["mounts"] for f in m["fillers"]]}
