"""Mutual TLS wired into a replica (services.kit.app.Service): its identity from the environment (tls.py), failed
handshakes counted (handshakes.py), the public port served over TLS with a client certificate required and its
callers authorized (authz.py), and the client session calling upstreams with the replica's certificate.

The shop's edge (the gateway: contract.is_edge) keeps its public port plain HTTP for clients outside the shop, as
an ingress would, and authorizes users by their tokens; it still calls in with its own certificate.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

from services.contract import is_edge
from services.kit.authz import Callers, caller_middleware
from services.kit.config import ConfigError, env_bool
from services.kit.handshakes import count_failed_handshakes
from services.kit.tls import Identity, identity_from_env


def load_identity(service: str, log: Any) -> Identity | None:
    """This replica's identity (TLS_* set), else None; a configuration that cannot work ends the process with
    status 2 and one line saying why, as every other configuration error does."""
    try:
        identity = identity_from_env(log)
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if identity is not None:
        count_failed_handshakes()
    return identity


def caller_middlewares(identity: Identity | None, service: str, log: Any) -> list[Any]:
    """The caller's authorization for the public application, when it speaks mutual TLS."""
    if identity is None or is_edge(service):
        return []
    return [caller_middleware(Callers(service, log))]


def callers(identity: Identity | None, service: str, log: Any) -> Callers | None:
    """Who may call a gRPC service, when it speaks mutual TLS (for grpc_server(callers=...))."""
    return Callers(service, log) if identity is not None and not is_edge(service) else None


def public_ssl_context(identity: Identity | None, service: str) -> ssl.SSLContext | None:
    """The public port's TLS (a client certificate required), None for plain HTTP."""
    return identity.server_context if identity is not None and not is_edge(service) else None


def database_ssl(identity: Identity | None, url: str) -> ssl.SSLContext | None:
    """PostgreSQL over mutual TLS (DATABASE_TLS=on): the replica's certificate (its CN, the service's name, is the
    database user a server with `hostssl ... cert` in pg_hba.conf authenticates) and the server checked against the
    CA by the DSN's host. Off by default: the PostgreSQL a lab uses is the machine's, outside its CA."""
    try:
        wanted = env_bool("DATABASE_TLS", False)
        if wanted and identity is None:
            raise ConfigError("DATABASE_TLS=on needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE")
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not wanted or identity is None or not url.startswith("postgresql"):
        return None
    return identity.client_context


def client_ssl(identity: Identity | None) -> ssl.SSLContext | bool:
    """What the client session verifies and presents: this replica's pair and the CA, else aiohttp's default."""
    return identity.client_context if identity is not None else True
