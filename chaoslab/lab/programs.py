"""The programs supervisord runs for a lab: the infrastructure and every replica of every service."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from chaoslab.kernel import clock
from chaoslab.lab.binaries import Binaries
from chaoslab.lab.certs import tls_env
from chaoslab.lab.paths import repo_root
from chaoslab.lab.ports import GRPC_SERVICES, SERVICES
from chaoslab.lab.spec import LabSpec
from services import contract

TLS_VARIABLES = ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE")  # the lab's, never overridden (services/kit/tls.py)
LAB_MARKER = "CHAOSLAB_LAB"  # set to the state dir in every process of a lab (see procs.py)
INFRASTRUCTURE = ("rabbitmq", "endpoints", "certs", "prometheus", "alertmanager", "webhook")
ENDPOINTS = "endpoints"  # the isolated network's endpoints controller (chaoslab.lab.endpoints)
CERTS = "certs"  # the renewals of a lab with mutual TLS (chaoslab.lab.rotation)
CALLEES = tuple(s for s in contract.SERVICES if any(s.name in caller.calls for caller in contract.SERVICES))


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    env: dict[str, str]
    directory: Path
    priority: int  # supervisord stops high priorities first: replicas, then the rest, RabbitMQ last
    stopwaitsecs: int
    ready_url: str
    service: str | None = None
    replica: int | None = None
    ready_tcp: list[int] = field(default_factory=list)
    ready_host: str = "127.0.0.1"  # where ready_tcp is asked (a host's own address in an isolated lab)


def rabbitmq_env(spec: LabSpec) -> dict[str, str]:
    rabbit = spec.paths.rabbitmq
    env = {
        "HOME": str(rabbit / "home"),  # the Erlang cookie; rabbitmqctl needs the same HOME and -n NODE
        "RABBITMQ_NODENAME": spec.node_name,
        # isolated: the node listens on its own host's address; the Erlang distribution stays on its loopback
        "RABBITMQ_NODE_IP_ADDRESS": "0.0.0.0" if spec.isolated else "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(spec.ports.amqp),
        "RABBITMQ_DIST_PORT": str(spec.ports.rabbitmq_dist),
        "RABBITMQ_MNESIA_BASE": str(rabbit / "mnesia"),
        "RABBITMQ_LOG_BASE": str(rabbit / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout, hence STATE/logs/rabbitmq.log
        "RABBITMQ_CONFIG_FILE": str(rabbit / "rabbitmq"),  # without .conf
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(rabbit / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(rabbit / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(rabbit / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(rabbit / "rabbitmq.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    if spec.tls:
        # These two would open a plain AMQP listener beside the TLS one of rabbitmq.conf (render.rabbitmq_conf);
        # the distribution port is set on its own.
        del env["RABBITMQ_NODE_IP_ADDRESS"], env["RABBITMQ_NODE_PORT"]
    return env


def service_env(spec: LabSpec, service: str, replica: int) -> dict[str, str]:
    """The environment of one replica (docs/design.md, "Service environment")."""
    ports = spec.ports
    env = {
        # isolated: every address of the replica's own namespace (its host address and its loopback)
        "HTTP_HOST": "0.0.0.0" if spec.isolated else "127.0.0.1",
        "ADMIN_PORT": str(ports.admin_port(service, replica)),
        "REPLICA_ID": f"{service}-{replica}",
        "REPLICA_ADDRESS": spec.replica_host(service, replica),
        "DATABASE_URL": spec.database_url(service),
        "AMQP_URL": spec.amqp_url,
        "ADMIN_TOKEN": spec.admin_token,
        "SPANS_DIR": str(spec.paths.spans),
        # Where every service that others call listens (AUTH_URL, ..., PAYMENTS_GRPC_ADDR): the contract's names,
        # at the service address of an isolated lab (balanced over the ready replicas), else on loopback; https
        # with mutual TLS.
        **{callee.address_variable: spec.service_address(callee.name) for callee in CALLEES},
        "PYTHONUNBUFFERED": "1",
    }
    if spec.tls:  # the replica's identity: its certificate, key and the lab's CA (chaoslab.lab.certs)
        env.update(tls_env(spec, f"{service}-{replica}"))
    if spec.isolated:
        env.update(clock.faketime_env(spec, f"{service}-{replica}"))
    if service in GRPC_SERVICES:
        env["GRPC_PORT"] = str(ports.service_port(service))
    else:
        env["HTTP_PORT"] = str(ports.service_port(service))
    # Overrides (`chaoslab up --env`, `chaoslab env`) come last, but never move a replica off its ports or
    # identity: the registry, Prometheus' targets and the fault tools rely on those.
    if service == contract.AUTH.name:
        # the lab's own admin account (spec.admin_account), never a default one
        env["BOOTSTRAP_ADMIN"] = f"{spec.admin_account['email']}:{spec.admin_account['password']}"
    fixed = {"HTTP_PORT", "GRPC_PORT", "ADMIN_PORT", "REPLICA_ID", "ADMIN_TOKEN", "BOOTSTRAP_ADMIN", "HTTP_HOST",
             "REPLICA_ADDRESS", *clock.FAKETIME_VARIABLES, *TLS_VARIABLES}
    env.update({k: v for k, v in spec.env_for(service).items() if k not in fixed})
    return env


def in_namespace(spec: LabSpec, host: str, command: list[str]) -> list[str]:
    """`command`, run in `host`'s network namespace when the lab is isolated."""
    return spec.net.enter(host) + command if spec.isolated else command


def endpoints_program(spec: LabSpec) -> Program:
    """The isolated network's endpoints controller: it keeps each service address balanced over the ready
    replicas, and ends the kernel faults whose TTL ran out (chaoslab.lab.endpoints)."""
    return Program(
        name=ENDPOINTS,
        command=[sys.executable, "-m", "chaoslab.lab.endpoints", "--state-dir", str(spec.paths.state)],
        env={"PYTHONUNBUFFERED": "1"}, directory=repo_root(), priority=20, stopwaitsecs=10,
        ready_url=f"{spec.url(spec.ports.endpoints)}/health",
    )


def certs_program(spec: LabSpec) -> Program:
    """The renewals of the lab's certificates and the TTL of certificate faults (chaoslab.lab.rotation)."""
    return Program(
        name=CERTS,
        command=[sys.executable, "-m", "chaoslab.lab.rotation", "--state-dir", str(spec.paths.state)],
        env={"PYTHONUNBUFFERED": "1"}, directory=repo_root(), priority=20, stopwaitsecs=10,
        ready_url=f"{spec.url(spec.ports.certs)}/health",
    )


def infrastructure_programs(spec: LabSpec, binaries: Binaries) -> list[Program]:
    paths, ports, url = spec.paths, spec.ports, spec.url
    broker = spec.broker_host
    controllers = [endpoints_program(spec)] if spec.isolated else []
    controllers += [certs_program(spec)] if spec.tls else []
    return [
        Program(
            name="rabbitmq", command=in_namespace(spec, "rabbitmq", [str(binaries.rabbitmq_server)]),
            env=rabbitmq_env(spec), directory=paths.rabbitmq, priority=10, stopwaitsecs=30,
            ready_url=f"{url(ports.rabbitmq_metrics, broker)}/metrics", ready_tcp=[ports.amqp], ready_host=broker,
        ),
        *controllers,
        Program(
            name="prometheus",
            command=[
                str(binaries.prometheus), f"--config.file={paths.prometheus_yml}",
                f"--storage.tsdb.path={paths.prometheus / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports.prometheus}",
                "--web.enable-lifecycle", "--enable-feature=exemplar-storage",
                "--storage.tsdb.retention.time=7d",
            ],
            env={}, directory=paths.prometheus, priority=20, stopwaitsecs=20,
            ready_url=f"{url(ports.prometheus)}/-/ready",
        ),
        Program(
            name="alertmanager",
            command=[
                str(binaries.alertmanager), f"--config.file={paths.alertmanager_yml}",
                f"--storage.path={paths.alertmanager / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports.alertmanager}", "--cluster.listen-address=",
            ],
            env={}, directory=paths.alertmanager, priority=20, stopwaitsecs=15,
            ready_url=f"{url(ports.alertmanager)}/-/ready",
        ),
        Program(
            name="webhook",
            command=[
                sys.executable, "-m", "chaoslab.lab.webhook", "--host", "127.0.0.1",
                "--port", str(ports.webhook), "--out", str(paths.notifications),
            ],
            env={"PYTHONUNBUFFERED": "1"}, directory=repo_root(), priority=20, stopwaitsecs=10,
            ready_url=f"{url(ports.webhook)}/health",
        ),
    ]


def monolith_env(spec: LabSpec, replica: int) -> dict[str, str]:
    """The environment of one monolith replica (services/monolith/README.md): the gateway's public port, each
    module's admin port and database as that module's replica would have them, and every override of the lab
    (a module's own variable names are its own, so the services' overrides merge into one process)."""
    ports = spec.ports
    name = f"monolith-{replica}"
    env = {
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(ports.service_port(contract.GATEWAY.name)),
        "ADMIN_PORT": str(ports.admin_port(contract.GATEWAY.name, replica)),
        **{f"{s.upper()}_ADMIN_PORT": str(ports.admin_port(s, replica)) for s in SERVICES},
        **{f"{s.upper()}_DATABASE_URL": spec.database_url(s) for s in SERVICES},
        "REPLICA_ID": name,
        "AMQP_URL": spec.amqp_url,
        "ADMIN_TOKEN": spec.admin_token,
        "SPANS_DIR": str(spec.paths.spans),
        "BOOTSTRAP_ADMIN": f"{spec.admin_account['email']}:{spec.admin_account['password']}",
        "PYTHONUNBUFFERED": "1",
    }
    fixed = {"HTTP_PORT", "ADMIN_PORT", "REPLICA_ID", "ADMIN_TOKEN", "BOOTSTRAP_ADMIN", "HTTP_HOST",
             *(f"{s.upper()}_ADMIN_PORT" for s in SERVICES)}
    for service in SERVICES:
        env.update({k: v for k, v in spec.env_for(service).items() if k not in fixed})
    return env


def monolith_programs(spec: LabSpec) -> list[Program]:
    return [Program(
        name=f"monolith-{n}", command=[sys.executable, "-m", "services.monolith"], env=monolith_env(spec, n),
        directory=repo_root(), priority=100, stopwaitsecs=20,
        ready_url=f"{spec.url(spec.ports.admin_port(contract.GATEWAY.name, n))}/health/ready",
        replica=n,
    ) for n in range(1, spec.monolith_count + 1)]


def replica_programs(spec: LabSpec) -> list[Program]:
    if spec.monolith:
        return monolith_programs(spec)
    out = []
    for service in SERVICES:
        for n in range(1, spec.replicas.get(service, 0) + 1):
            name = f"{service}-{n}"
            out.append(Program(
                name=name, command=in_namespace(spec, name, [sys.executable, "-m", f"services.{service}"]),
                env=service_env(spec, service, n), directory=repo_root(), priority=100, stopwaitsecs=20,
                ready_url=f"{spec.url(spec.ports.admin_port(service, n), spec.replica_host(service, n))}/health/ready",
                service=service, replica=n,
            ))
    return out


def all_programs(spec: LabSpec, binaries: Binaries) -> list[Program]:
    return infrastructure_programs(spec, binaries) + replica_programs(spec)


def missing_service_modules(spec: LabSpec) -> list[str]:
    """Services with replicas whose `services/<name>/__main__.py` does not exist in this checkout."""
    root = repo_root()
    if spec.monolith:
        return [] if (root / "services" / "monolith" / "__main__.py").exists() else ["monolith"]
    return [s for s in SERVICES if spec.replicas.get(s, 0) > 0 and not (root / "services" / s / "__main__.py").exists()]
