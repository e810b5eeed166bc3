"""Checks before a lab starts anything, so that `up` fails fast, clearly, and with nothing left running."""

from __future__ import annotations

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


def preflight_up(spec: LabSpec) -> Binaries:
    """Everything `up` needs, checked before anything starts; returns the binaries to run."""
    binaries = find_binaries()
    check_database_template(spec.database_url_template)
    check_services(spec)
    check_not_running(spec.paths)
    check_ports(spec.ports, spec.ports.all_ports(spec.replicas))
    return binaries
