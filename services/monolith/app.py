"""The modular monolith: the shop's six modules in one deployable process.

Each module is the service's own code, built by the service's own factory (`create_service`), so its routes,
handlers, database, outbox, consumer, admin API and health are exactly the service's. What changes is how modules
reach each other: the gateway's upstreams, orders' calls to users and payments, and every module's JWKS fetch go
in process (services/kit/inprocess.py): through the callee's router, middlewares and handler (or, for payments, its
servicer with the gRPC server's metrics and faults), with the caller's timeouts, retries, breakers and metrics as
they are (protocol label `inprocess`). Only the gateway module opens a public port; every module keeps its admin
port (its faults, health and audit are its own) and its own database.

Events keep their transactional outbox and go through RabbitMQ, as between the services: the outbox is what makes
"order stored" and "event sent" one decision (an in-process bus would lose the events of a replica that dies
between the two), the broker's queue is what lets notifications fall behind and catch up without slowing orders
down, and the same event contract keeps a module extractable into a service later.

Configuration (environment, defaults in brackets): HTTP_PORT [18000] the public port; REPLICA_ID
[monolith-<host>]; <MODULE>_ADMIN_PORT [the module's native admin port, 19000-19005; for the gateway module
ADMIN_PORT first, the monolith's own as a service's]; <MODULE>_DATABASE_URL
[sqlite file <module>.db under DATA_DIR, .chaoslab/data]; every other variable is read by the modules as the services
read it (AMQP_URL, ADMIN_TOKEN, RATE_LIMIT_RPS, PROVIDER_*, ...). Mutual TLS (TLS_*) is refused: no hop inside the
process has a connection to present a certificate on, and the calls wired here are the call graph's own
(services.contract), so authorization by caller holds by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

from aiohttp import web

from services import contract
from services.kit import metrics
from services.kit.app import Service, run_until_signalled
from services.kit.config import CommonConfig, env_int, env_str
from services.kit.inprocess import AppDispatch
from services.kit.inprocess_grpc import LocalStub
from services.kit.logs import setup_logging
from services.kit.tracing import setup_tracing

NAME = "monolith"
# The gRPC service payments' servicer implements (its full name, as in services/proto/payments.proto).
PAYMENTS_GRPC_SERVICE = "payments.v1.Payments"


def _factories() -> dict[str, Callable[[], Service]]:
    # Imported here: each module's import sets up nothing, but grpc and the proto come with orders and payments.
    from services.auth.app import create_service as auth
    from services.gateway.app import create_service as gateway
    from services.notifications.app import create_service as notifications
    from services.orders.app import create_service as orders
    from services.payments.app import create_service as payments
    from services.users.app import create_service as users

    return {"gateway": gateway, "auth": auth, "users": users, "orders": orders,
            "payments": lambda: payments(serve_grpc=False), "notifications": notifications}


@contextlib.contextmanager
def _module_environment(module: str, replica: str, data_dir: str, public_port: int) -> Iterator[None]:
    """The environment a module's factory reads, while it runs: its own admin port and database, the monolith's
    replica id, and for the gateway the public port (no other module opens one). Restored afterwards, so no module
    sees another's."""
    edge = module == contract.GATEWAY.name
    native_admin = contract.native_port(module) + contract.ADMIN_PORT_OFFSET
    own = {
        "HTTP_PORT": str(public_port if edge else contract.native_port(module)),
        # the gateway's admin port is the monolith's own (ADMIN_PORT, as a service's), the others' their own
        "ADMIN_PORT": str(env_int(f"{module.upper()}_ADMIN_PORT",
                                  env_int("ADMIN_PORT", native_admin) if edge else native_admin)),
        "DATABASE_URL": env_str(f"{module.upper()}_DATABASE_URL",
                                f"sqlite+aiosqlite:///{os.path.join(data_dir, module)}.db"),
        "REPLICA_ID": replica,
    }
    saved = {k: os.environ.get(k) for k in own}
    os.environ.update(own)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Monolith:
    """One replica of the monolith: the six modules, wired to each other in process."""

    def __init__(self) -> None:
        if not metrics.BY_MODULE:
            raise RuntimeError("services.kit.metrics was imported before METRICS_BY_MODULE=1 was set "
                               "(run `python -m services.monolith`)")
        if any(k.startswith("TLS_") and v for k, v in os.environ.items()):
            print(f"{NAME}: configuration error: mutual TLS (TLS_*) does not apply to calls inside one process; "
                  "unset TLS_* (the lab's monolith topology runs --tls off)", file=sys.stderr)
            raise SystemExit(2)
        public_port = env_int("HTTP_PORT", contract.native_port(contract.GATEWAY.name))
        self.replica = env_str("REPLICA_ID", f"{NAME}-{socket.gethostname()}")
        data_dir = env_str("DATA_DIR", ".chaoslab/data")
        # The process' tracer provider first, named for the monolith (the modules' setups then reuse it).
        setup_tracing(CommonConfig.from_env(NAME, public_port))
        self.modules: dict[str, Service] = {}
        for module, factory in _factories().items():
            with _module_environment(module, self.replica, data_dir, public_port):
                self.modules[module] = factory()
        # One log configuration for the process (each module's setup replaced the last): service=monolith.
        self.log = setup_logging(NAME, self.replica, self.modules[contract.GATEWAY.name].config.log_level)
        self._wire()

    def _wire(self) -> None:
        from services.gateway.app import GATEWAY
        from services.orders.app import PAYMENTS, USERS
        from services.payments.app import SERVICER

        dispatch = {name: AppDispatch(name, svc.app) for name, svc in self.modules.items()}
        for name, svc in self.modules.items():
            if name != contract.GATEWAY.name:
                svc.public_http = False  # reached in process, through `dispatch`
                svc.lifetime(_in_process(dispatch[name]))
            svc.verifier.fetch_in_process(dispatch[contract.AUTH.name])
        inner = [d for name, d in dispatch.items() if name != contract.GATEWAY.name]
        self.modules[contract.GATEWAY.name].lifetime(_once_serving(inner))
        for upstream_name, upstream in self.modules[contract.GATEWAY.name].app[GATEWAY].upstreams.items():
            upstream.serve_in_process(dispatch[upstream_name])
        orders = self.modules[contract.ORDERS.name].app
        orders[USERS].serve_in_process(dispatch[contract.USERS.name])
        payments = self.modules[contract.PAYMENTS.name]
        orders[PAYMENTS].upstream.serve_in_process(
            LocalStub(payments.app[SERVICER], PAYMENTS_GRPC_SERVICE, payments.faults, contract.PAYMENTS.name))

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event) -> None:
        """Every module serves until `stop`; the gateway's public port opens when its own start is done."""
        self.log.info("monolith starting", modules=list(self.modules))
        await asyncio.gather(*(_as_module(name, svc.serve(stop, hurry)) for name, svc in self.modules.items()))

    def run(self) -> None:
        run_until_signalled(self.serve, self.log)


def _in_process(dispatch: AppDispatch) -> Callable[[Service], AsyncGenerator[None, None]]:
    """A module's application set up without a port (its startup run, frozen), for calls in process; calls before
    and after are refused as a closed port refuses them."""

    async def in_process(svc: Service) -> AsyncGenerator[None, None]:
        runner = web.AppRunner(svc.app, access_log=None)
        await runner.setup()
        dispatch.serving = True
        yield
        dispatch.serving = False
        await runner.cleanup()

    in_process.__name__ = f"in_process_{dispatch.name}"
    return in_process


async def _as_module(name: str, serving: Awaitable[None]) -> None:
    """A module's whole life in its own task whose context names it: its metrics, and those of every task and
    connection it starts (they copy the context), carry its name (services/kit/metrics.py)."""
    metrics.MODULE.set(name)
    await serving


def _once_serving(modules: list[AppDispatch]) -> Callable[[Service], AsyncGenerator[None, None]]:
    """The gateway's last step before its public port opens: every other module serves, so that the monolith's
    first public request (and its readiness) finds the whole shop in place, as one deployable should."""

    async def modules_serving(svc: Service) -> AsyncGenerator[None, None]:
        await asyncio.gather(*(m.wait_serving() for m in modules))
        # the gateway's key warm-up ran while auth was still starting; fetch the keys now, or the first tokens
        # would wait out the verifier's refetch pause (seen: 503 "token keys are not available yet" after a restart)
        await svc.verifier.refresh()
        yield

    return modules_serving


def main() -> None:
    Monolith().run()
