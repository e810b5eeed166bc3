"""Logs as one JSON object per line on stdout, with service, replica and the current trace and span ids.

No secret reaches a log line, whoever writes it (the kit, a service, a library, an exception's text): values of
fields named like secrets are replaced, and bearer tokens, JWTs and the Authorization and Cookie headers are cut
out of every text, rendered exceptions included."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import structlog
from opentelemetry import trace

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _add_trace_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    else:
        event.setdefault("trace_id", None)
        event.setdefault("span_id", None)
    return event


REDACTED = "[redacted]"
_SECRET_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "password", "token",
                            "access_token", "refresh_token", "admin_token", "secret", "private_pem"})
_SECRET_TEXT = (
    # a header line, as a parser error quotes it: "Authorization: Bearer ...", "Cookie: ..."
    (re.compile(r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie)(\s*[:=]\s*)[^\r\n'\"]*"),
     r"\1\2" + REDACTED),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"), "Bearer " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),  # a JWT anywhere
)


def scrub(text: str) -> str:
    """`text` without bearer tokens, JWTs and Authorization/Cookie header values."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The last processor before rendering: secret fields replaced, secrets cut out of every text value."""
    for key, value in event.items():
        if key.lower() in _SECRET_FIELDS:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def setup_logging(service: str, replica: str, level: str = "info") -> structlog.stdlib.BoundLogger:
    """Configure structlog and the stdlib root logger (libraries' records) to print the same JSON lines. In an
    isolated lab every line also names the replica's own address (REPLICA_ADDRESS)."""
    address = os.environ.get("REPLICA_ADDRESS")

    def add_identity(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event["service"] = service
        event["replica"] = replica
        if address:
            event["address"] = address
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.stdlib.add_log_level,
        add_identity,
        _add_trace_ids,
        structlog.processors.EventRenamer("message"),
    ]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,  # after format_exc_info: an exception's text is scrubbed too
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # aiohttp's own access log would duplicate the kit's one line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger(service)
