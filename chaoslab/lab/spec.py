"""What a lab is made of (base port, replicas, database template, its secrets), kept in STATE/lab.json (0600).

A lab's secrets are generated for it, once per state dir, and kept across `up`s: the replicas' admin API token and
the shop's admin account (auth creates it from BOOTSTRAP_ADMIN; no lab shares a default password)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from chaoslab.errors import LabError
from chaoslab.lab.network import ISOLATED, LOOPBACK, MODES, NetPlan
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.pki import DEFAULT_CERT_TTL_S, MIN_CERT_TTL_S
from chaoslab.lab.ports import MAX_REPLICAS, SERVICES, PortPlan
from services import contract


def default_replicas() -> dict[str, int]:
    return dict.fromkeys(SERVICES, 1)


def parse_replicas(items: list[str], base: dict[str, int] | None = None) -> dict[str, int]:
    """Apply `SVC=N` items (also comma separated: `orders=2,payments=3`) to `base` (default: one each).

    N may be 0 (the service is not run) up to MAX_REPLICAS.
    """
    replicas = dict(base) if base is not None else default_replicas()
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, count = part.partition("=")
            name = name.strip()
            if not sep or name not in SERVICES:
                raise LabError(f"bad replica setting {part!r}: expected SVC=N with SVC one of {', '.join(SERVICES)}")
            try:
                value = int(count)
            except ValueError:
                raise LabError(f"bad replica count in {part!r}: {count!r} is not a number") from None
            if not 0 <= value <= MAX_REPLICAS:
                raise LabError(f"bad replica count in {part!r}: choose 0..{MAX_REPLICAS}")
            replicas[name] = value
    return replicas


ALL_SERVICES = "*"
# The lab's topologies: each service as its own replicas (the default), or the six as modules of one deployable
# process, N replicas of it (services/monolith), so that the trade-off can be measured on one codebase.
MICROSERVICES, MONOLITH = "microservices", "monolith"
TOPOLOGIES = (MICROSERVICES, MONOLITH)


def monolith_replicas(count: int) -> dict[str, int]:
    """Every module of a monolith runs in each of its replicas: one count for all."""
    return dict.fromkeys(SERVICES, count)


def parse_monolith_count(items: list[str], current: int) -> int:
    """A monolith's replica count from `monolith=N` (or `SVC=N`: a module scales only with the whole monolith,
    so any module's count is the monolith's); the last one given wins."""
    count = current
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, _, value = part.partition("=")
            if name.strip() != MONOLITH:
                # validated as a service's setting, then applied to the whole monolith
                value = str(parse_replicas([part], default_replicas())[name.strip()])
            try:
                count = int(value)
            except ValueError:
                raise LabError(f"bad replica count in {part!r}: {value!r} is not a number") from None
            if not 1 <= count <= MAX_REPLICAS:
                raise LabError(f"bad replica count in {part!r}: a monolith runs 1..{MAX_REPLICAS} replicas")
    return count
LOOPBACK_ADDRESS = "127.0.0.1"
SHOP_ADMIN_EMAIL = "admin@chaoslab.local"


def parse_env(items: list[str], base: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Apply `[SVC:]KEY=VALUE` items to `base`: an override of one service's environment, or of every
    service's without `SVC:`. An empty VALUE removes the override."""
    env = {k: dict(v) for k, v in (base or {}).items()}
    for item in items:
        target, colon, assignment = item.partition(":")
        if not colon or "=" in target:
            target, assignment = ALL_SERVICES, item
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if target != ALL_SERVICES and target not in SERVICES:
            raise LabError(f"bad environment override {item!r}: {target!r} is not a service "
                           f"({', '.join(SERVICES)})")
        if not sep or not key or not key.replace("_", "").isalnum():
            raise LabError(f"bad environment override {item!r}: expected [SVC:]KEY=VALUE, "
                           "e.g. payments:PROVIDER_LATENCY_MS=200")
        scope = env.setdefault(target, {})
        if value:
            scope[key] = value
        else:
            scope.pop(key, None)
    return {k: v for k, v in env.items() if v}


@dataclass(frozen=True)
class LabSpec:
    state_dir: Path
    base_port: int
    replicas: dict[str, int] = field(default_factory=default_replicas)
    database_url_template: str | None = None
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # Environment overrides: {"*": {...}} for every service, {"payments": {...}} for one (applied after "*").
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    # "loopback" (every process on 127.0.0.1, no privileges) or "isolated" (chaoslab.lab.network; root)
    network: str = LOOPBACK
    # Mutual TLS on every internal hop, with certificates of the lab's CA (chaoslab.lab.pki) that live cert_ttl_s
    tls: bool = True
    cert_ttl_s: int = DEFAULT_CERT_TTL_S
    topology: str = MICROSERVICES

    def __post_init__(self) -> None:
        if self.network not in MODES:
            raise LabError(f"unknown network mode {self.network!r}: choose {' or '.join(MODES)}")
        if self.topology not in TOPOLOGIES:
            raise LabError(f"unknown topology {self.topology!r}: choose {' or '.join(TOPOLOGIES)}")
        if self.monolith:
            if self.tls:
                raise LabError("a monolith lab runs --tls off: its modules call each other in one process, with "
                               "no connection to present a certificate on", hint="chaoslab up --topology monolith "
                               "--tls off (the default with --topology monolith)")
            if self.isolated:
                raise LabError("a monolith lab runs --network loopback (an isolated monolith is not built yet)")
            if len(set(self.replicas.values())) != 1:
                raise LabError("every module of a monolith has the monolith's replica count: "
                               f"got {self.replicas}", hint="chaoslab up --topology monolith --replicas monolith=N")
        if not MIN_CERT_TTL_S <= self.cert_ttl_s <= 30 * 86400:
            raise LabError(f"a certificate's lifetime of {self.cert_ttl_s} s is out of range: choose "
                           f"{MIN_CERT_TTL_S} s to 30 days (renewed at half of it)")

    @property
    def monolith(self) -> bool:
        return self.topology == MONOLITH

    @property
    def monolith_count(self) -> int:
        return max(self.replicas.values(), default=0)

    def program_of(self, replica_name: str) -> str:
        """The supervisord program a replica runs in: its own (payments-2), or in a monolith the monolith replica
        that holds the module (monolith-2)."""
        service, _, number = replica_name.rpartition("-")
        if not self.monolith or service not in SERVICES or not number.isdigit():
            return replica_name  # a service's own replica, or not a replica (rabbitmq, prometheus, ...)
        return f"{MONOLITH}-{number}"

    def program_names(self, services: list[str] | None = None) -> list[str]:
        """The replica programs (of `services`, of all by default), each once, in start order."""
        chosen = SERVICES if services is None else services
        names = [self.program_of(n) for s in chosen for n in self.replica_names(s)]
        return list(dict.fromkeys(names))

    @property
    def isolated(self) -> bool:
        return self.network == ISOLATED

    @property
    def net(self) -> NetPlan:
        """The isolated network's plan (addresses, names); LabError for a loopback lab."""
        if not self.isolated:
            raise LabError(f"the lab in {self.paths.state} runs --network loopback: it has no network of its own",
                           hint="faults below the application need an isolated lab: chaoslab down, then "
                                "chaoslab up --network isolated (as root)")
        return NetPlan(self.base_port)

    def replica_host(self, service: str, replica: int) -> str:
        """The address a replica listens on and is reached at."""
        return self.net.replica_address(service, replica) if self.isolated else LOOPBACK_ADDRESS

    def service_host(self, service: str) -> str:
        """The address callers reach a service at: its service address (isolated), else loopback."""
        return self.net.service_address(service) if self.isolated else LOOPBACK_ADDRESS

    @property
    def broker_host(self) -> str:
        return self.net.broker_address if self.isolated else LOOPBACK_ADDRESS

    def env_for(self, service: str) -> dict[str, str]:
        return {**self.env.get(ALL_SERVICES, {}), **self.env.get(service, {})}

    @property
    def admin_account(self) -> dict[str, str]:
        """The shop's admin account of this lab (an admin role at auth: sees every profile and order)."""
        return {"email": SHOP_ADMIN_EMAIL, "password": self.admin_password}

    @property
    def paths(self) -> LabPaths:
        return LabPaths.of(self.state_dir)

    @property
    def ports(self) -> PortPlan:
        return PortPlan(self.base_port)

    @property
    def node_name(self) -> str:
        return f"chaoslab-{self.base_port}@localhost"

    @property
    def amqp_url(self) -> str:
        """How the services reach the broker: AMQP over TLS with their certificate as the login (SASL EXTERNAL), or,
        with --tls off, plain AMQP as the guest user."""
        if self.tls:
            return f"amqps://{self.broker_host}:{self.ports.amqp}/?auth=external"
        return f"amqp://guest:guest@{self.broker_host}:{self.ports.amqp}/"

    def service_address(self, service: str) -> str:
        """Where callers reach a service: a URL (https with mutual TLS) or, for gRPC, host:port."""
        address = contract.native_address(service, self.base_port, self.service_host(service))
        if self.tls and not contract.is_edge(service):
            return address.replace("http://", "https://", 1)
        return address

    def url(self, port: int, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{port}"

    def replica_names(self, service: str) -> list[str]:
        return [f"{service}-{n}" for n in range(1, self.replicas.get(service, 0) + 1)]

    def database_url(self, service: str) -> str:
        if self.database_url_template:
            return self.database_url_template.format(service=service)
        if self.isolated:  # on the service's own size-limited disk (chaoslab.lab.disks)
            return f"sqlite+aiosqlite:///{self.paths.data / service / f'{service}.db'}"
        return f"sqlite+aiosqlite:///{self.paths.data / f'{service}.db'}"

    def with_replicas(self, replicas: dict[str, int]) -> LabSpec:
        return replace(self, replicas=dict(replicas))

    def with_env(self, env: dict[str, dict[str, str]]) -> LabSpec:
        return replace(self, env={k: dict(v) for k, v in env.items()})

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["state_dir"] = str(self.paths.state)
        return data

    def save(self) -> None:
        path = self.paths.lab_json
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.chmod(tmp, 0o600)  # it holds the lab's secrets
        tmp.replace(path)


def load_spec(state_dir: str | os.PathLike[str]) -> LabSpec:
    """The lab of a state dir, as `chaoslab up` recorded it; LabError when there is none."""
    paths = LabPaths.of(state_dir)
    try:
        data = json.loads(paths.lab_json.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {paths.state}", hint=f"start one: chaoslab up --state-dir {paths.state}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LabError(f"cannot read {paths.lab_json}: {exc}") from None
    return LabSpec(
        state_dir=paths.state,
        base_port=int(data["base_port"]),
        replicas={s: int(data.get("replicas", {}).get(s, 0)) for s in SERVICES},
        database_url_template=data.get("database_url_template"),
        admin_token=str(data["admin_token"]),
        # a lab recorded before it had an admin password of its own gets one now (kept at the next save)
        admin_password=str(data.get("admin_password") or secrets.token_urlsafe(18)),
        env={str(k): {str(a): str(b) for a, b in v.items()} for k, v in (data.get("env") or {}).items()},
        network=str(data.get("network") or LOOPBACK),
        tls=bool(data.get("tls", True)),
        cert_ttl_s=int(data.get("cert_ttl_s") or DEFAULT_CERT_TTL_S),
        topology=str(data.get("topology") or MICROSERVICES),
    )


def existing_secrets(state_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The secrets a state dir already has (admin_token, admin_password), to keep them across `up`s; empty for a
    new state dir."""
    try:
        spec = load_spec(state_dir)
    except (LabError, KeyError, ValueError):
        return {}
    return {"admin_token": spec.admin_token, "admin_password": spec.admin_password}
