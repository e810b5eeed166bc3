"""The lab's kernel faults: one record per fault in STATE/kernel/faults.json, with its TTL and every kernel object
it made, so that removing a fault needs nothing but its record (whoever removes it: its rollback, the reaper in
the endpoints controller once the TTL ran out, `chaoslab faults --clear`, `chaoslab down`).

Objects a record can hold, each removed idempotently:
- `chains`: filter chains of the lab's own (`CHAOSLAB-<B>-F<n>`), jumped to from the lab's fault chain;
- `qdiscs`: [namespace or "", link]: a root qdisc the fault put on a link;
- `cgroups`: cgroup v1 directories (`/sys/fs/cgroup/<controller>/chaoslab-<B>/...`);
- `pids`: processes it started (an NFQUEUE delay worker, stress-ng, a memory hog): their process groups are ended;
- `files`: files it wrote (a disk's filler): deleted;
- `clocks`: clock files it set (chaoslab.kernel.clock): set back to the real time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.kernel import clock
from chaoslab.lab import iptables
from chaoslab.lab.spec import LabSpec

MAX_TTL_S = 3600.0


@dataclass
class Record:
    id: str  # F1, F2, ...: also the suffix of its chain
    kind: str
    target: dict[str, Any]
    params: dict[str, Any]
    created_at: float
    expires_at: float
    objects: dict[str, list[Any]] = field(default_factory=dict)
    attestation: dict[str, Any] = field(default_factory=dict)

    @property
    def ttl_left_s(self) -> float:
        return max(0.0, self.expires_at - time.time())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def folder(spec: LabSpec) -> Path:
    return spec.paths.state / "kernel"


@contextlib.contextmanager
def _locked(spec: LabSpec) -> Iterator[dict[str, Any]]:
    """The store's content, locked against the other writers (actions, the reaper, the CLI); written back."""
    path = folder(spec) / "faults.json"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder(spec) / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            data = {}
        data.setdefault("next", 1)
        data.setdefault("faults", {})
        yield data
        tmp = path.with_name(".faults.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)


def records(spec: LabSpec) -> list[Record]:
    with _locked(spec) as data:
        return [Record(**r) for r in data["faults"].values()]


def get(spec: LabSpec, fault_id: str) -> Record:
    for record in records(spec):
        if record.id == fault_id:
            return record
    raise LabError(f"no kernel fault {fault_id!r} in the lab (it ended, or was never made)")


def new_id(spec: LabSpec) -> str:
    with _locked(spec) as data:
        number = int(data["next"])
        data["next"] = number + 1
    return f"F{number}"


def save(spec: LabSpec, record: Record) -> None:
    with _locked(spec) as data:
        data["faults"][record.id] = record.to_json()


def new_record(spec: LabSpec, kind: str, target: dict[str, Any], params: dict[str, Any], ttl_s: float) -> Record:
    if not 0 < float(ttl_s) <= MAX_TTL_S:
        raise LabError(f"a fault's ttl_s must be in (0, {MAX_TTL_S:g}]: every kernel fault ends by itself")
    now = time.time()
    record = Record(new_id(spec), kind, target, params, now, now + float(ttl_s))
    save(spec, record)  # recorded before anything is made: a crash half-way still leaves it to be removed
    return record


# -- removing ------------------------------------------------------------------------------------------------------

def faults_chain_rules(spec: LabSpec, chains: list[str]) -> list[str]:
    """The lab's fault chain: the observer's ports exempt, then a jump to each fault's chain."""
    net = spec.net
    return ([f"-p tcp -m multiport --ports {net.observer_ports()} -j RETURN"]
            + [f"-j {chain}" for chain in chains])


def fault_chains(spec: LabSpec) -> list[str]:
    """The chains of active faults, in the order they were made (F1 before F2)."""
    net = spec.net
    names = [c for c in iptables.chains("filter", net.faults_chain) if net.is_fault_chain(c)]
    return sorted(names, key=lambda c: int(c[len(net.faults_chain):]))


def relink(spec: LabSpec, drop: list[str] | None = None) -> None:
    """Rewrite the fault chain to jump to every fault chain but `drop` (one transaction)."""
    keep = [c for c in fault_chains(spec) if c not in (drop or [])]
    iptables.replace("filter", {spec.net.faults_chain: faults_chain_rules(spec, keep)})


def end_process(pid: int, grace_s: float = 3.0) -> None:
    """End a process the lab started in a session of its own (its whole group: stress-ng forks workers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)


def remove_cgroup(path: str) -> None:
    """Move what is left in a cgroup to its controller's root, then remove it (and its lab parent when empty)."""
    folder_ = Path(path)
    if not folder_.is_dir():
        return
    root = Path("/sys/fs/cgroup") / folder_.relative_to("/sys/fs/cgroup").parts[0]
    for _ in range(20):
        try:
            pids = (folder_ / "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(pid)
        try:
            folder_.rmdir()
            break
        except OSError:
            time.sleep(0.05)
    parent = folder_.parent
    if parent != root and parent.name.startswith("chaoslab-"):
        with contextlib.suppress(OSError):
            parent.rmdir()


def remove_qdisc(netns: str, link: str) -> None:
    from chaoslab.lab.network import netlink

    with contextlib.suppress(Exception), netlink(netns or None) as ipr:
        for index in ipr.link_lookup(ifname=link):
            ipr.tc("del", index=index, root=True)


def remove_objects(spec: LabSpec, objects: dict[str, list[Any]]) -> None:
    """Undo every kernel object in `objects` (idempotent; the order matters: traffic first, then processes)."""
    chains = list(objects.get("chains", []))
    if chains:
        relink(spec, drop=chains)
        iptables.delete_chains("filter", chains)
    for netns, link in objects.get("qdiscs", []):
        remove_qdisc(netns, link)
    for pid in objects.get("pids", []):
        end_process(int(pid))
    for path in objects.get("cgroups", []):
        remove_cgroup(path)
    for path in objects.get("files", []):
        with contextlib.suppress(OSError):
            Path(path).unlink()
    for path in objects.get("clocks", []):
        clock.write(Path(path), clock.NEUTRAL)


def remove(spec: LabSpec, fault_id: str) -> Record | None:
    """End one fault (its objects, then its record); None when it was gone already."""
    with _locked(spec) as data:
        raw = data["faults"].get(fault_id)
    if raw is None:
        return None
    record = Record(**raw)
    remove_objects(spec, record.objects)
    with _locked(spec) as data:
        data["faults"].pop(fault_id, None)
    return record


def reap(spec: LabSpec, now: float | None = None) -> list[Record]:
    """End every fault whose TTL ran out; the ones ended."""
    now = time.time() if now is None else now
    return [r for r in (remove(spec, rec.id) for rec in records(spec) if rec.expires_at <= now) if r is not None]


def remove_all(spec: LabSpec) -> list[Record]:
    return [r for r in (remove(spec, rec.id) for rec in records(spec)) if r is not None]
