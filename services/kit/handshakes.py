"""Counting failed TLS handshakes (tls_handshake_failures_total), which asyncio otherwise keeps to itself.

asyncio's SSL transport ends a connection whose handshake failed and reports it nowhere: the failure is an
ssl.SSLError, an OSError, which it logs only in debug mode, and the aiohttp server never sees the connection at all.
So a caller without a certificate, with an expired one or one from another CA would be refused without a trace.
`count_failed_handshakes()` wraps the transport's handshake-completion step (asyncio.sslproto, Python 3.11's
`SSLProtocol._on_handshake_complete`) once per process to count every failure, server and client side, by
reason. Client-side failures carry the name the client checked (services.kit.tls: the upstream's service name, or
the broker's address). gRPC does its TLS in its own core: its client-side failures are counted by the gRPC client
(grpc_client.py) from the call's status; its server-side ones cannot be seen from Python.
"""

from __future__ import annotations

import ssl
from typing import Any

from services.kit import metrics

# OpenSSL's reasons, as ssl.SSLError.reason names them, sorted into the few that say what to do.
_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no_certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "expired",
    "CERTIFICATE_VERIFY_FAILED": "bad_certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "bad_certificate",
}


def reason_of(exc: BaseException) -> str:
    """A failed handshake's reason, one of a few: what the operator does differs for each."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or "").lower()
        if "expired" in message:
            return "expired"
        if "hostname mismatch" in message or "ip address mismatch" in message:
            return "wrong_name"
        if "unable to get local issuer" in message or "self-signed" in message or "self signed" in message:
            return "unknown_ca"
        return "bad_certificate"
    if isinstance(exc, ssl.SSLError):
        return _REASONS.get(str(exc.reason or ""), "other")
    return "other"


def observe(server_side: bool, peer: str | None, exc: BaseException) -> None:
    metrics.tls_handshake_failures_total.labels("server" if server_side else "client",
                                                peer or "unknown", reason_of(exc)).inc()


# A peer that hung up before or during the handshake (a TCP probe, a port scan) is no TLS failure.
_HUNG_UP = (ssl.SSLEOFError, ssl.SSLZeroReturnError)
_installed = {"done": False}


def count_failed_handshakes() -> bool:
    """Install the counting wrapper (idempotent). False when this Python's asyncio has no such step: then nothing
    is counted, and the kit's test of it fails (tests/kit/test_tls.py)."""
    if _installed["done"]:
        return True
    from asyncio import sslproto

    original = getattr(sslproto.SSLProtocol, "_on_handshake_complete", None)
    if original is None:
        return False

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> Any:
        if isinstance(handshake_exc, ssl.SSLError) and not isinstance(handshake_exc, _HUNG_UP):
            observe(bool(getattr(self, "_server_side", False)), getattr(self, "_server_hostname", None),
                    handshake_exc)
        return original(self, handshake_exc)

    sslproto.SSLProtocol._on_handshake_complete = on_handshake_complete  # type: ignore[method-assign]
    _installed["done"] = True
    return True
