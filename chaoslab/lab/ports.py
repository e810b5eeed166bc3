"""The port plan of a lab: every port derives from one base port (docs/design.md, "Ports"); the services and
their offsets come from the shop's contract (services/contract.py)."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from services import contract

SERVICES: tuple[str, ...] = contract.SERVICE_NAMES
GRPC_SERVICES = frozenset(contract.GRPC_SERVICES)
DEFAULT_BASE_PORT = contract.DEFAULT_BASE_PORT
MAX_REPLICAS = 20  # admin ports are 20 apart per service
SPAN = 300  # ports a lab may use above its base (B+0 .. B+219), rounded up: bases this far apart never collide


@dataclass(frozen=True)
class PortPlan:
    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - SPAN:
            raise ValueError(f"base port {self.base} out of range: choose one in 1024..{65535 - SPAN}")

    def service_port(self, service: str) -> int:
        """The service's public port (gRPC for payments), shared by its replicas with SO_REUSEPORT."""
        return contract.native_port(service, self.base)

    def admin_port(self, service: str, replica: int) -> int:
        """The admin port of replica number `replica` (1-based) of `service`."""
        if not 1 <= replica <= MAX_REPLICAS:
            raise ValueError(f"replica number {replica} out of range 1..{MAX_REPLICAS}")
        return self.base + 100 + 20 * SERVICES.index(service) + (replica - 1)

    @property
    def amqp(self) -> int:
        return self.base + contract.AMQP_PORT_OFFSET

    @property
    def rabbitmq_dist(self) -> int:
        return self.base + 11

    @property
    def rabbitmq_metrics(self) -> int:
        return self.base + 12

    @property
    def prometheus(self) -> int:
        return self.base + 20

    @property
    def alertmanager(self) -> int:
        return self.base + 21

    @property
    def webhook(self) -> int:
        return self.base + 22

    @property
    def endpoints(self) -> int:
        """The isolated network's endpoints controller (health and its view of the service addresses)."""
        return self.base + 23

    @property
    def certs(self) -> int:
        """The `certs` program (mutual TLS only): renewals, health and the certificates it sees."""
        return self.base + 24

    @property
    def locust(self) -> int:
        return self.base + 30

    def infrastructure_ports(self) -> list[tuple[int, str]]:
        """(port, what it is for) of everything but the services."""
        return [
            (self.amqp, "RabbitMQ AMQP"),
            (self.rabbitmq_dist, "RabbitMQ Erlang distribution"),
            (self.rabbitmq_metrics, "RabbitMQ Prometheus plugin"),
            (self.prometheus, "Prometheus"),
            (self.alertmanager, "Alertmanager"),
            (self.webhook, "lab webhook receiver"),
            (self.endpoints, "endpoints controller (isolated network)"),
            (self.certs, "certificate renewals (mutual TLS)"),
        ]

    def service_ports(self, replicas: dict[str, int]) -> list[tuple[int, str]]:
        """(port, what it is for) of the services with at least one replica, and of each replica's admin port."""
        out: list[tuple[int, str]] = []
        for service in SERVICES:
            count = replicas.get(service, 0)
            if count <= 0:
                continue
            kind = "gRPC" if service in GRPC_SERVICES else "HTTP"
            out.append((self.service_port(service), f"{service} {kind}"))
            out.extend((self.admin_port(service, n), f"{service}-{n} admin") for n in range(1, count + 1))
        return out

    def all_ports(self, replicas: dict[str, int]) -> list[tuple[int, str]]:
        return self.infrastructure_ports() + self.service_ports(replicas)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on host:port now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def taken_ports(ports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(port, what) for port, what in ports if not port_is_free(port)]


def find_free_base(start: int, stop: int, step: int = SPAN, replicas: dict[str, int] | None = None) -> int:
    """The first base in range(start, stop, step) whose whole plan is free (MAX_REPLICAS of every service)."""
    wanted = replicas if replicas is not None else dict.fromkeys(SERVICES, MAX_REPLICAS)
    for base in range(start, stop, step):
        plan = PortPlan(base)
        if not taken_ports(plan.all_ports(wanted)):
            return base
    raise RuntimeError(f"no free base port in {start}..{stop} (step {step})")
