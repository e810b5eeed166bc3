"""The shop's shared facts, in one place: which services there are and how they are reached, who calls whom,
the message bus' names and its one message, the token claims and the roles.

Everything that needs one of these facts imports it from here: the services and their kit, the native lab's port
plan (chaoslab.lab.ports), the SLO catalogue (chaoslab.observability.slos), the chaos extension, the Kubernetes
generator (k8s/generate.py), the benchmarks and the tests. A test that wants an independent view of a fact (the
NetworkPolicies' call graph in tests/deploy) writes it out itself on purpose.

The module imports nothing of the services' runtime (no aiohttp, no database): pydantic only, so that the CLI,
Locust and the k8s generator can read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# -- the services ------------------------------------------------------------------------------------------------

Protocol = Literal["http", "grpc"]


@dataclass(frozen=True)
class ServiceFacts:
    """One service of the shop.

    `port_offset`: natively its public port is the lab's base port + this offset (18000 + offset by default);
    `protocol`: what that port speaks (payments: gRPC, every other: HTTP);
    `calls`: every service it opens connections to, auth included for the JWKS that every service's kit can fetch:
    the call graph the Kubernetes NetworkPolicies allow;
    `database`, `broker`: whether it owns a database, whether it talks to RabbitMQ.
    """

    name: str
    port_offset: int
    protocol: Protocol
    calls: tuple[str, ...]
    database: bool
    broker: bool

    @property
    def is_grpc(self) -> bool:
        return self.protocol == "grpc"

    @property
    def address_variable(self) -> str:
        """The variable through which its callers find it: AUTH_URL, ..., PAYMENTS_GRPC_ADDR for gRPC."""
        return f"{self.name.upper()}_GRPC_ADDR" if self.is_grpc else f"{self.name.upper()}_URL"


GATEWAY = ServiceFacts("gateway", 0, "http", ("auth", "users", "orders", "notifications"), database=False,
                       broker=False)
AUTH = ServiceFacts("auth", 1, "http", (), database=True, broker=False)
USERS = ServiceFacts("users", 2, "http", ("auth",), database=True, broker=False)
ORDERS = ServiceFacts("orders", 3, "http", ("auth", "users", "payments"), database=True, broker=True)
PAYMENTS = ServiceFacts("payments", 4, "grpc", ("auth",), database=True, broker=False)
NOTIFICATIONS = ServiceFacts("notifications", 5, "http", ("auth",), database=True, broker=True)

# In the order they are listed everywhere (ports, dashboards, status tables).
SERVICES: tuple[ServiceFacts, ...] = (GATEWAY, AUTH, USERS, ORDERS, PAYMENTS, NOTIFICATIONS)
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
GRPC_SERVICES: tuple[str, ...] = tuple(s.name for s in SERVICES if s.is_grpc)
HTTP_SERVICES: tuple[str, ...] = tuple(s.name for s in SERVICES if not s.is_grpc)
BY_NAME: dict[str, ServiceFacts] = {s.name: s for s in SERVICES}


def facts(name: str) -> ServiceFacts:
    """The facts of a service by name; KeyError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r} (services: {', '.join(SERVICE_NAMES)})") from None


# -- identities and who may call whom -------------------------------------------------------------------------

# Every workload's identity is a SPIFFE ID, spiffe://<trust domain>/ns/<namespace>/sa/<name>, carried as the URI SAN
# of its certificate (natively from the lab's CA, chaoslab.lab.pki) and, in Kubernetes under Istio, the same shape
# with the cluster's trust domain and the pod's service account (k8s/generate_istio.py). A callee authorizes its
# caller from `calls` above (services.kit.tls): the graph that also makes the NetworkPolicies, the native
# network policy (chaoslab.lab.netpolicy) and Istio's AuthorizationPolicies.
TRUST_DOMAIN = "chaoslab"
IDENTITY_NAMESPACE = "lab"
BROKER_IDENTITY = "rabbitmq"  # the lab's RabbitMQ node (its server certificate)
OPERATOR_IDENTITY = "chaoslab"  # the lab's own tools (the chaos runner's publisher, the CLI); no service's caller
IDENTITIES: tuple[str, ...] = (*SERVICE_NAMES, BROKER_IDENTITY, OPERATOR_IDENTITY)
SPIFFE_PREFIX = f"spiffe://{TRUST_DOMAIN}/ns/{IDENTITY_NAMESPACE}/sa/"


def spiffe_id(name: str) -> str:
    """The identity of a service (or of the broker, or of the lab's tools): spiffe://chaoslab/ns/lab/sa/<name>."""
    if name not in IDENTITIES:
        raise KeyError(f"no identity {name!r} (identities: {', '.join(IDENTITIES)})")
    return SPIFFE_PREFIX + name


def identity_name(uri: str | None) -> str | None:
    """The name in one of the lab's SPIFFE IDs (`orders` for spiffe://chaoslab/ns/lab/sa/orders); None for any
    other URI (another trust domain or namespace, a name the lab does not issue, none at all)."""
    if not uri or not uri.startswith(SPIFFE_PREFIX):
        return None
    name = uri[len(SPIFFE_PREFIX):]
    return name if name in IDENTITIES else None


def callers_of(service: str) -> tuple[str, ...]:
    """The services whose `calls` name `service`, in the order of SERVICES: the only callers it accepts."""
    facts(service)
    return tuple(s.name for s in SERVICES if service in s.calls)


def is_edge(service: str) -> bool:
    """A service no other service calls is the shop's edge (the gateway): its public port faces clients outside
    the shop, so it speaks plain HTTP (TLS is an ingress' business there) and authorizes users, not services."""
    return not callers_of(service)



# -- where things listen -----------------------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
# The native lab's ports: every one derives from a base port (chaoslab.lab.ports); these are the services' own
# defaults when they run alone, which match a lab on the default base.
DEFAULT_BASE_PORT = 18000
ADMIN_PORT_OFFSET = 1000  # a service run alone: its admin port is its public port + this
AMQP_PORT_OFFSET = 10  # the lab's RabbitMQ listens on base + this
# In containers (compose, Kubernetes) every replica listens on the same ports of its own address.
CONTAINER_HTTP_PORT = 8080
CONTAINER_ADMIN_PORT = 9090
CONTAINER_GRPC_PORT = 50051


def native_port(service: str, base: int = DEFAULT_BASE_PORT) -> int:
    return base + facts(service).port_offset


def native_address(service: str, base: int = DEFAULT_BASE_PORT, host: str = LOOPBACK) -> str:
    """How callers reach a service natively: a URL for HTTP, host:port for gRPC."""
    port = native_port(service, base)
    return f"{host}:{port}" if facts(service).is_grpc else f"http://{host}:{port}"


def native_amqp_url(base: int = DEFAULT_BASE_PORT, host: str = LOOPBACK) -> str:
    return f"amqp://guest:guest@{host}:{base + AMQP_PORT_OFFSET}/"


# -- the message bus -----------------------------------------------------------------------------------------

EXCHANGE = "orders"  # topic, durable: orders publishes every order event here
DEAD_LETTER_EXCHANGE = "orders.dlx"
ORDER_EVENTS_QUEUE = "notifications.order-events"  # quorum queue with a delivery limit
DEAD_LETTER_QUEUE = "notifications.dead-letter"
ORDER_EVENTS_PATTERN = "order.*"  # what the order events queue is bound with
ORDER_CREATED = "order.created"


def _names(*names: str) -> str:
    return "^(" + "|".join(n.replace(".", r"\.") for n in names) + ")$"


# What each identity may do on the lab's RabbitMQ node, as the node's permissions (configure, write, read: regular
# expressions over exchange and queue names) for the user its certificate names: orders declares and publishes to
# the order events exchange; notifications declares its queues and the dead-letter path (a queue that dead-letters
# needs write on its dead-letter exchange), binds them and consumes;
# the lab's tools publish a poison message and count or purge a queue (the chaos extension), and declare nothing.
BROKER_PERMISSIONS: dict[str, tuple[str, str, str]] = {
    "orders": (_names(EXCHANGE), _names(EXCHANGE), "^$"),
    "notifications": (_names(EXCHANGE, DEAD_LETTER_EXCHANGE, ORDER_EVENTS_QUEUE, DEAD_LETTER_QUEUE),
                      _names(DEAD_LETTER_EXCHANGE, ORDER_EVENTS_QUEUE, DEAD_LETTER_QUEUE),
                      _names(EXCHANGE, DEAD_LETTER_EXCHANGE, ORDER_EVENTS_QUEUE, DEAD_LETTER_QUEUE)),
    OPERATOR_IDENTITY: ("^$", _names(EXCHANGE), _names(ORDER_EVENTS_QUEUE, DEAD_LETTER_QUEUE)),
}


class OrderEvent(BaseModel):
    """The message orders publishes for every order and notifications consumes: one model for both sides.

    Consumers ignore fields they do not know (a producer may add some); the producer sends exactly these."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=36)
    type: str = Field(pattern=r"^order\.[a-z_]+$")
    order_id: str = Field(min_length=1, max_length=36)
    user_id: str = Field(min_length=1, max_length=64)
    total_cents: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    occurred_at: str  # RFC 3339, UTC

    def payload(self) -> bytes:
        """The message body: compact JSON, fields in the order above."""
        return self.model_dump_json().encode()


# -- the replicas' admin API -----------------------------------------------------------------------------------

FAULT_KINDS: tuple[str, ...] = ("latency", "error", "abort", "cpu")
MAX_FAULT_TTL_S = 3600


class FaultSpec(BaseModel):
    """A fault for one replica (POST /admin/faults): read by the kit's admin API and by chaoslab's admin client."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["latency", "error", "abort", "cpu"]
    ttl_s: float = Field(60.0, gt=0, le=MAX_FAULT_TTL_S)
    percent: float = Field(100.0, ge=0, le=100)
    route: str | None = Field(None, max_length=200, description="route template (or gRPC method) only")
    upstream: str | None = Field(None, max_length=100, description="calls to this upstream only")
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    jitter_ms: float = Field(0.0, ge=0, le=60_000)
    status: int = Field(503, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.kind == "latency" and self.latency_ms <= 0:
            raise ValueError("a latency fault needs latency_ms > 0")
        if self.kind == "cpu" and (self.route or self.upstream):
            raise ValueError("a cpu fault applies to the whole replica: no route or upstream")
        return self


# -- tokens and roles ----------------------------------------------------------------------------------------

JWT_ISSUER = "chaoslab-auth"
JWT_AUDIENCE = "chaoslab"
JWT_ALGORITHM = "RS256"
JWKS_PATH = "/.well-known/jwks.json"

CUSTOMER = "customer"
ADMIN = "admin"
ROLES: tuple[str, ...] = (CUSTOMER, ADMIN)
ANY_USER: tuple[str, ...] = (CUSTOMER, ADMIN)
ADMIN_ONLY: tuple[str, ...] = (ADMIN,)
