"""Checks before a lab starts anything, so that `up` fails fast, clearly, and with nothing left running."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from chaoslab.errors import LabError
from chaoslab.lab.binaries import Binaries, find_binaries
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.ports import PortPlan, taken_ports
from chaoslab.lab.procs import describe, lab_processes
from chaoslab.lab.programs import missing_service_modules
from chaoslab.lab.spec import LabSpec
from chaoslab.lab.supervisor import Supervisor


def check_not_running(paths: LabPaths) -> None:
    """A state dir holds one lab at a time."""
    if Supervisor(paths).is_running():
        raise LabError(f"a lab already runs in {paths.state}",
                       hint=f"see it: chaoslab status --state-dir {paths.state}; stop it: chaoslab down "
                            f"--state-dir {paths.state}; or choose another --state-dir and --base-port")
    leftovers = lab_processes(paths.state)
    if leftovers:
        raise LabError(f"processes of an earlier lab in {paths.state} still run:\n{describe(leftovers)}",
                       hint=f"end them: chaoslab down --state-dir {paths.state}")


def check_ports(plan: PortPlan, ports: list[tuple[int, str]]) -> None:
    taken = taken_ports(ports)
    if taken:
        listing = ", ".join(f"{port} ({what})" for port, what in taken)
        raise LabError(
            f"port{'s' if len(taken) > 1 else ''} already in use: {listing}",
            hint=f"another lab or program listens there; choose another base port, e.g. --base-port "
                 f"{plan.base + 1000} (this lab uses {plan.base}..{plan.base + 219})",
        )


def check_database_template(template: str | None) -> None:
    if template is None:
        return
    try:
        a, b = template.format(service="a"), template.format(service="b")
    except (KeyError, IndexError, ValueError) as exc:
        raise LabError(f"bad --database-url-template {template!r}: {exc}",
                       hint="use {service} as the only placeholder, e.g. "
                            "postgresql+asyncpg://postgres@127.0.0.1:5432/chaoslab_{service}") from None
    if a == b:
        raise LabError(f"--database-url-template {template!r} has no {{service}} placeholder",
                       hint="each service owns its database: put {service} in the database name")


def check_services(spec: LabSpec) -> None:
    missing = missing_service_modules(spec)
    if missing:
        raise LabError(
            "no module for service" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
            + " (services/<name>/__main__.py)",
            hint="run without them: --replicas " + " --replicas ".join(f"{s}=0" for s in missing),
        )


CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
# (command, Debian package) the isolated lab and its faults run
ISOLATED_TOOLS = (("iptables", "iptables"), ("iptables-restore", "iptables"), ("iptables-save", "iptables"),
                  ("nsenter", "util-linux"), ("mount", "mount"), ("mkfs.ext4", "e2fsprogs"),
                  ("stress-ng", "stress-ng"))


@dataclass(frozen=True)
class Missing:
    what: str
    how: str

    def __str__(self) -> str:
        return f"{self.what}: {self.how}"


def effective_capabilities() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def isolated_requirements(spec: LabSpec | None = None, *, euid: int | None = None,
                          capabilities: int | None = None) -> list[Missing]:
    """What this machine lacks for `--network isolated` (empty when nothing): privileges, tools, libraries,
    kernel features, and an address range of its own for the lab. `euid` and `capabilities` default to this
    process' own (a test passes others to see the refusal of an unprivileged user)."""
    from chaoslab.kernel import clock
    from chaoslab.lab.network import NetPlan, overlapping_routes

    euid = os.geteuid() if euid is None else euid
    caps = effective_capabilities() if capabilities is None else capabilities
    missing = []
    privileged = euid == 0 or (caps >> CAP_NET_ADMIN & 1 and caps >> CAP_SYS_ADMIN & 1)
    if not privileged:
        missing.append(Missing(
            "root, or CAP_NET_ADMIN and CAP_SYS_ADMIN (network namespaces, the bridge, iptables, cgroups, mounts)",
            "run it as root: sudo -E .venv/bin/chaoslab up --network isolated; or keep --network loopback, which "
            "needs no privileges (faults below the application then refuse to run)"))
    for command, package in ISOLATED_TOOLS:
        if shutil.which(command) is None:
            missing.append(Missing(f"{command} (Debian package {package})",
                                   f"apt-get install {package}, or make setup"))
    if clock.library() is None:
        missing.append(Missing("libfaketime (every replica's own clock)", "apt-get install libfaketime, or make setup"))
    for module, what, how in (
        ("pyroute2", "pyroute2 (namespaces, links, qdiscs)", "pip install -r requirements.lock, or make setup"),
        ("netfilterqueue", "libnetfilter-queue and NetfilterQueue (packet delay through NFQUEUE)",
         "apt-get install libnetfilter-queue-dev, then pip install -r requirements.lock (or make setup)"),
    ):
        if importlib.util.find_spec(module) is None:
            missing.append(Missing(what, how))
    for controller in ("memory", "cpu"):
        if not Path(f"/sys/fs/cgroup/{controller}/cgroup.procs").exists():
            missing.append(Missing(f"the cgroup v1 {controller} controller at /sys/fs/cgroup/{controller}",
                                   "a kernel with cgroup v1 memory and cpu mounted (see docs)"))
    if spec is not None:
        if spec.database_url_template:
            missing.append(Missing("SQLite: an isolated lab keeps each service's database on a disk of its own",
                                   "drop --database-url-template, or use --network loopback"))
        if privileged and importlib.util.find_spec("pyroute2") is not None:
            plan = NetPlan(spec.base_port)
            clash = overlapping_routes(plan)
            if clash:
                missing.append(Missing(f"an address range of its own: {plan.subnet} (from base port "
                                       f"{spec.base_port}) overlaps {', '.join(clash[:3])}",
                                       f"choose another --base-port (e.g. {spec.base_port + 300})"))
    return missing


def check_isolated(spec: LabSpec) -> None:
    missing = isolated_requirements(spec)
    if missing:
        raise LabError("--network isolated cannot run here; missing:\n" + "\n".join(f"  - {m}" for m in missing),
                       hint="everything but the privileges is installed by make setup (scripts/setup.sh)")


def preflight_up(spec: LabSpec) -> Binaries:
    """Everything `up` needs, checked before anything starts; returns the binaries to run."""
    binaries = find_binaries()
    check_database_template(spec.database_url_template)
    check_services(spec)
    if spec.isolated:
        check_isolated(spec)
    check_not_running(spec.paths)
    check_ports(spec.ports, spec.ports.all_ports(spec.replicas))
    return binaries
