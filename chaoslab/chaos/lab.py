"""The lab an activity acts on, as a handle built from the experiment's configuration: the extension's
counterpart of chaostoolkit-kubernetes' API client. Every action and probe starts with `Lab.of(configuration)`.

Which lab: the configuration key `chaoslab_state_dir`, else $CHAOSLAB_STATE_DIR, else .chaoslab (a native lab,
found through its registry: chaoslab.lab.registry.find); or, with `chaoslab_target` / $CHAOSLAB_TARGET set to
"compose", the compose stack the runner sits in (chaoslab.lab.compose). Experiments carry no addresses.

The handle hands out the clients (Prometheus, the admin API, the probe customer) and the lab's supervisord.
Errors of the lab and of the clients reach Chaos Toolkit as ActivityFailed, with the same message.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos import seeds
from chaoslab.clients.admin import AdminClient
from chaoslab.clients.prometheus import Prometheus
from chaoslab.clients.shop import ShopClient, StoredCustomer
from chaoslab.errors import ChaoslabError
from chaoslab.lab import compose, faults, registry
from chaoslab.lab.paths import DEFAULT_STATE_DIR
from chaoslab.lab.spec import LabSpec, load_spec
from chaoslab.lab.supervisor import Supervisor

TARGET_KEY = "chaoslab_target"
STATE_KEY = "chaoslab_state_dir"
STATE_ENV = "CHAOSLAB_STATE_DIR"
PROMETHEUS_TIMEOUT_S = 5.0

Configuration = dict[str, Any] | None
Replica = str | int | None

# The probe customer of each lab, for the life of the `chaos run` process: it logs in once and keeps its token
# (an auth outage experiment goes on with the token it already holds, as a real client would).
_customers: dict[tuple[str, str], StoredCustomer] = {}


@contextmanager
def activity_errors() -> Iterator[None]:
    """chaoslab's own errors (lab, clients) as Chaos Toolkit's ActivityFailed, with the same message."""
    try:
        yield
    except ChaoslabError as exc:
        raise ActivityFailed(str(exc)) from None


def state_dir(configuration: Configuration = None) -> Path:
    """The configuration key wins over the environment, which wins over the default."""
    value = (configuration or {}).get(STATE_KEY) or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR
    return Path(str(value)).expanduser().resolve()


def target(configuration: Configuration = None) -> str:
    """"native" (a lab on this machine, the default) or "compose" (the runner inside a compose stack)."""
    value = str((configuration or {}).get(TARGET_KEY) or os.environ.get(compose.TARGET_ENV) or "native")
    if value not in ("native", "compose"):
        raise ActivityFailed(f"unknown chaos target {value!r} ({TARGET_KEY} / ${compose.TARGET_ENV}): "
                             "native or compose")
    return value


def replicas(reg: dict[str, Any], service: str) -> list[dict[str, Any]]:
    try:
        return list(reg["services"][service]["replicas"])
    except KeyError:
        raise ActivityFailed(f"no service {service!r} in the lab (services: {', '.join(reg['services'])})") from None


def select_replicas(reg: dict[str, Any], service: str, replica: Replica = "all",
                    rng: random.Random | None = None) -> list[dict[str, Any]]:
    """The replicas an activity targets.

    `replica` is "all" (every replica), None or "random" (one, at random), a number (1-based: 2 is
    `<service>-2`) or a replica name. Experiments say "one replica" without knowing how many there are.
    """
    found = replicas(reg, service)
    if not found:
        raise ActivityFailed(f"{service} has no replicas in this lab")
    if replica == "all":
        return found
    if replica is None or replica == "random":
        # seeded (CHAOSLAB_SEED, chaoslab.chaos.seeds): the same replica for the same seed and the same candidates
        return [(rng or seeds.rng_for(service, *(r["name"] for r in found)) or random).choice(found)]
    wanted = f"{service}-{replica}" if isinstance(replica, int) or str(replica).isdigit() else str(replica)
    for item in found:
        if item["name"] == wanted:
            return [item]
    raise ActivityFailed(f"no replica {wanted!r} of {service} (replicas: {', '.join(r['name'] for r in found)})")


def service_of(replica_name: str) -> str:
    """`payments-2` -> `payments`."""
    return replica_name.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Lab:
    registry: dict[str, Any]
    state: Path | None  # the native lab's state dir; None for a compose stack

    @classmethod
    def of(cls, configuration: Configuration = None) -> Lab:
        with activity_errors():
            if target(configuration) == "compose":
                return cls(compose.compose_registry(), None)
            state = state_dir(configuration)
            try:
                return cls(registry.find(state), state)
            except ChaoslabError as exc:
                raise ActivityFailed(f"{exc.message} ({STATE_KEY} / ${STATE_ENV} say where): start one with "
                                     f"`chaoslab up --state-dir {state}`") from None

    @property
    def is_compose(self) -> bool:
        return compose.is_compose(self.registry)

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self.registry["prometheus_url"], timeout_s=PROMETHEUS_TIMEOUT_S)

    @property
    def admin(self) -> AdminClient:
        return AdminClient.of(self.registry)

    @property
    def customer(self) -> StoredCustomer:
        """The probe customer (STATE/chaos/customer.json; in compose, under $CHAOSLAB_STATE_DIR too)."""
        gateway = str(self.registry["gateway_url"])
        path = (self.state or state_dir()) / "chaos" / "customer.json"
        key = (gateway, str(path))
        if key not in _customers:
            _customers[key] = StoredCustomer(ShopClient(gateway), path)
        return _customers[key]

    def replicas(self, service: str) -> list[dict[str, Any]]:
        return replicas(self.registry, service)

    def select(self, service: str, replica: Replica) -> list[dict[str, Any]]:
        return select_replicas(self.registry, service, replica)

    def isolated(self, what: str = "this fault") -> LabSpec:
        """The spec of a native lab running --network isolated; a clear refusal for any other (a fault below the
        application needs the lab's own network, cgroups, disks and clocks)."""
        if self.state is None:
            raise ActivityFailed(f"{what} acts below the application: it needs the native lab in isolated mode, "
                                 "not a compose stack (docs/deploy.md says which faults compose can take)")
        with activity_errors():
            spec = load_spec(self.state)
        if not spec.isolated:
            raise ActivityFailed(f"{what} needs an isolated lab (network namespaces, iptables, cgroups, disks, "
                                 f"clocks); the lab in {self.state} runs --network {spec.network}: chaoslab down "
                                 f"--state-dir {self.state}, then (as root) chaoslab up --network isolated")
        return spec

    def supervisor(self, what: str = "this fault") -> Supervisor:
        """The native lab's supervisord; in compose, an error saying that `what` needs process control."""
        if self.state is None:
            raise ActivityFailed(str(compose.needs_process_control(what)))
        with activity_errors():
            return faults.supervisor_of(self.state)
