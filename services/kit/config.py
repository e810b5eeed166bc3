"""Configuration from environment variables, with the native lab's defaults (see docs/design.md)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from services.contract import ADMIN_PORT_OFFSET, AUTH, LOOPBACK, ServiceFacts, native_address, native_amqp_url


class ConfigError(ValueError):
    """A variable is set to a value that cannot be used; the message names the variable and the value."""


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _parse(name: str, default: object, cast: type, kind: str) -> object:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None


def env_int(name: str, default: int) -> int:
    return _parse(name, default, int, "an integer")  # type: ignore[return-value]


def env_float(name: str, default: float) -> float:
    return _parse(name, default, float, "a number")  # type: ignore[return-value]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of on/off/true/false/1/0, got {raw!r}")


def upstream_address(service: ServiceFacts) -> str:
    """Where this replica finds `service`: its address variable (AUTH_URL, USERS_URL, ..., PAYMENTS_GRPC_ADDR),
    else its native address (services/contract.py)."""
    return env_str(service.address_variable, native_address(service.name))


# A stopping replica that kept serving longer than this would outlast any orchestrator's grace period.
MAX_SHUTDOWN_DELAY_S = 300.0


@dataclass(frozen=True)
class CommonConfig:
    service: str
    replica: str
    host: str
    http_port: int
    admin_port: int
    database_url: str
    amqp_url: str
    admin_token: str
    auth_url: str
    log_level: str
    instrumentation: bool
    otlp_endpoint: str | None
    sampler_ratio: float
    traces_per_second: float
    spans_dir: str
    upstream_timeout_s: float
    max_body_bytes: int
    shutdown_delay_s: float
    db_connect_timeout_s: float

    @classmethod
    def from_env(cls, service: str, default_port: int) -> CommonConfig:
        http_port = env_int("HTTP_PORT", default_port)
        ratio = env_float("OTEL_TRACES_SAMPLER_ARG", 1.0)
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG must be between 0 and 1, got {ratio}")
        per_second = env_float("TRACES_PER_SECOND", 20.0)
        if per_second < 0:
            raise ConfigError(f"TRACES_PER_SECOND must be 0 (no limit) or more, got {per_second:g}")
        shutdown_delay = env_float("SHUTDOWN_DELAY_S", 0.0)
        if not 0.0 <= shutdown_delay <= MAX_SHUTDOWN_DELAY_S:
            raise ConfigError(f"SHUTDOWN_DELAY_S must be from 0 to {MAX_SHUTDOWN_DELAY_S:g} seconds, "
                              f"got {shutdown_delay:g}")
        connect_timeout = env_float("DB_CONNECT_TIMEOUT_S", 30.0)
        if not connect_timeout > 0:
            raise ConfigError(f"DB_CONNECT_TIMEOUT_S must be more than 0 seconds, got {connect_timeout:g}")
        return cls(
            service=service,
            replica=env_str("REPLICA_ID", f"{service}-{socket.gethostname()}"),
            host=env_str("HTTP_HOST", LOOPBACK),
            http_port=http_port,
            admin_port=env_int("ADMIN_PORT", http_port + ADMIN_PORT_OFFSET),
            database_url=env_str("DATABASE_URL", f"sqlite+aiosqlite:///.chaoslab/data/{service}.db"),
            amqp_url=env_str("AMQP_URL", native_amqp_url()),
            # No default token: without ADMIN_TOKEN the admin API takes none (a random one nobody is told).
            admin_token=env_str("ADMIN_TOKEN", "") or secrets.token_urlsafe(32),
            auth_url=upstream_address(AUTH).rstrip("/"),
            log_level=env_str("LOG_LEVEL", "info").lower(),
            instrumentation=env_bool("INSTRUMENTATION", True),
            otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            sampler_ratio=ratio,
            traces_per_second=per_second,
            spans_dir=env_str("SPANS_DIR", ".chaoslab/spans"),
            upstream_timeout_s=env_float("UPSTREAM_TIMEOUT_S", 3.0),
            max_body_bytes=env_int("MAX_BODY_BYTES", 65536),
            shutdown_delay_s=shutdown_delay,
            db_connect_timeout_s=connect_timeout,
        )
