"""Mutual TLS between the services: this replica's identity (a certificate with a SPIFFE ID, services/contract.py)
and the CA it trusts, as SSL contexts for the aiohttp server and client, credentials for gRPC and an SSL context for
AMQP; reloaded from their files while the replica runs, so a renewed certificate is used without a restart.

Configured by TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE (all three, or none: then every hop is plain, as in
compose and under Istio, where the mesh does this) and TLS_RELOAD_S (docs/design.md, "Service environment").

- Servers ask for a client certificate and refuse a handshake without one, or with one their CA did not sign or
  that expired (the handshake fails: tls_handshake_failures_total{side="server"}). Who the caller is, is the URI SAN
  of its certificate; whether it may call, the callee decides from the call graph (authz.py).
- Clients check the server's certificate against the CA and its DNS SAN against the name of the service they meant
  to call (`payments`: the lab's CA puts each identity's name there), so a replica holding another service's
  certificate cannot pose as the one called; the broker is checked by its address.
- Rotation: every TLS_RELOAD_S the files are looked at; when they changed they are loaded into the same SSL
  contexts (Python's SSLContext takes a new certificate for every later handshake; connections open stay as they
  are, which is why a renewal drops no request), gRPC's server credentials hand the new pair to the next handshake,
  and gRPC clients open new channels (`on_reload`). A pair that does not load (a key written before its
  certificate) keeps the old one until the next look.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from services.contract import identity_name
from services.kit import metrics
from services.kit.config import ConfigError, env_float

if TYPE_CHECKING:
    import grpc


class Runs(Protocol):
    """What a lifetime needs of the replica (services.kit.app.Service, which imports this module)."""

    def running(self, fn: Callable[[], Awaitable[None]], name: str) -> AbstractAsyncContextManager[None]: ...

DEFAULT_RELOAD_S = 2.0
VARIABLES = ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path
    reload_s: float = DEFAULT_RELOAD_S

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TlsFiles | None:
        """The files named by TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE; None when none is set; ConfigError when
        only some are, or one names no readable file."""
        env = os.environ if environ is None else environ
        given = {name: env.get(name, "") for name in VARIABLES}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise ConfigError(f"mutual TLS needs {', '.join(VARIABLES)} together; {', '.join(missing)} not set")
        for name, value in given.items():
            if not os.access(value, os.R_OK):
                raise ConfigError(f"{name}={value!r}: no readable file there")
        reload_s = env_float("TLS_RELOAD_S", DEFAULT_RELOAD_S)
        if not 0.1 <= reload_s <= 3600:
            raise ConfigError(f"TLS_RELOAD_S must be from 0.1 to 3600 seconds, got {reload_s:g}")
        return cls(Path(given["TLS_CERT_FILE"]), Path(given["TLS_KEY_FILE"]), Path(given["TLS_CA_FILE"]), reload_s)

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """What changes when a file is replaced (mtime, inode): a rename over it makes a new inode."""
        out = []
        for path in (self.cert, self.key, self.ca):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append((0, 0))
        return tuple(out)


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    return context


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Identity:
    """This replica's certificate, key and trusted CA, loaded; `server_context`, `client_context` and the gRPC
    credentials always hold the latest pair that loaded."""

    def __init__(self, files: TlsFiles, log: Any) -> None:
        self.files = files
        self.log = log
        self.server_context = _server_context()
        self.client_context = _client_context()
        self.uri: str | None = None
        self.name: str | None = None
        self.serial = 0
        self.not_after = 0.0
        self._pem: tuple[bytes, bytes, bytes] = (b"", b"", b"")
        self._ca: bytes = b""
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._version = 0
        self._lock = threading.Lock()  # gRPC's certificate fetcher runs on gRPC's own threads
        self._listeners: list[Callable[[], None]] = []
        try:
            self.reload()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"cannot load this replica's certificate ({files.cert}, {files.key}, CA {files.ca}): "
                              f"{exc}") from None

    # -- loading -------------------------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Load the files if they changed since the last load; True when a new pair is in use now. Raises when the
        files do not make a pair (the old one stays in use)."""
        stamp = self.files.stamp()
        if stamp == self._stamp:
            return False
        cert_pem, key_pem, ca_pem = (p.read_bytes() for p in (self.files.cert, self.files.key, self.files.ca))
        if (cert_pem, key_pem, ca_pem) == (*self._pem[:2], self._ca):
            self._stamp = stamp
            return False
        cert = x509.load_pem_x509_certificate(cert_pem)
        if ca_pem != self._ca:
            # Added to what is trusted (an SSLContext cannot forget a CA): a new CA is trusted beside the old one,
            # which is how a CA is rotated; the lab makes a new CA only with a new lab, whose replicas are new.
            for context in (self.server_context, self.client_context):
                context.load_verify_locations(cadata=ca_pem.decode())
        for context in (self.server_context, self.client_context):
            context.load_cert_chain(self.files.cert, self.files.key)
        with self._lock:
            self._pem = (cert_pem, key_pem, ca_pem)
            self._ca = ca_pem
            self._version += 1
        self._stamp = stamp
        self._describe(cert)
        for listener in list(self._listeners):
            listener()
        return True

    def _describe(self, cert: x509.Certificate) -> None:
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        old = self.name
        self.uri = uris[0] if uris else None
        self.name = identity_name(self.uri) or "unknown"
        self.serial = cert.serial_number
        self.not_after = cert.not_valid_after_utc.timestamp()
        not_before = cert.not_valid_before_utc.timestamp()
        if old is not None and old != self.name:
            metrics.tls_certificate_expiry_timestamp_seconds.remove(old)
            metrics.tls_certificate_not_before_timestamp_seconds.remove(old)
        metrics.tls_certificate_expiry_timestamp_seconds.labels(self.name).set(self.not_after)
        metrics.tls_certificate_not_before_timestamp_seconds.labels(self.name).set(not_before)
        metrics.tls_certificate_loads_total.inc()
        # What was loaded, never the key: the serial and dates say which certificate a replica serves with.
        self.log.info("certificate loaded", identity=self.uri, serial=f"{self.serial:x}",
                      not_after=dt.datetime.fromtimestamp(self.not_after, dt.UTC).isoformat(),
                      issuer=cert.issuer.rfc4514_string())

    def on_reload(self, listener: Callable[[], None]) -> None:
        """`listener()` after every new pair (gRPC clients reopen their channels with it)."""
        self._listeners.append(listener)

    async def watch(self) -> None:
        """Look at the files every TLS_RELOAD_S and load them when they changed (a background task)."""
        while True:
            await asyncio.sleep(self.files.reload_s)
            try:
                self.reload()
            except (OSError, ssl.SSLError, ValueError) as exc:
                # Most often a key already renewed whose certificate is not written yet: the next look finds both.
                self.log.warning("certificate not loaded; keeping the one in use", error=repr(exc))

    async def lifetime(self, svc: Runs) -> AsyncGenerator[None, None]:
        async with svc.running(self.watch, "tls_reload"):
            yield

    # -- gRPC ----------------------------------------------------------------------------------------------------------
    def pem(self) -> tuple[bytes, bytes, bytes]:
        """(certificate, key, CA) as loaded last."""
        with self._lock:
            return self._pem

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that ask every client for a certificate signed by the CA, and serve the latest pair: gRPC
        calls the fetcher at each new handshake, and it answers with a new configuration only after a reload."""
        import grpc

        served = {"version": self._version}

        def configuration() -> grpc.ServerCertificateConfiguration:
            cert, key, ca = self.pem()
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            with self._lock:
                version = self._version
            if version == served["version"]:
                return None
            served["version"] = version
            return configuration()

        return grpc.dynamic_ssl_server_credentials(configuration(), fetch, require_client_authentication=True)

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials:
        """This replica's pair as a gRPC client, trusting the CA. gRPC fixes a channel's credentials when it is
        made: after a reload, new channels take the new pair (GrpcUpstream reopens them)."""
        import grpc

        cert, key, ca = self.pem()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def peer_uri(transport: asyncio.BaseTransport | None) -> str | None:
    """The URI SAN (SPIFFE ID) of the certificate the peer of a TLS connection presented; None without TLS or
    without a URI SAN. getpeercert() parses the certificate only because the server verified it (CERT_REQUIRED)."""
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "URI":
            return str(value)
    return None


def grpc_peer_uri(context: grpc.aio.ServicerContext) -> str | None:
    """The SPIFFE ID of a gRPC caller, from its verified certificate (gRPC puts it in the auth context)."""
    auth = context.auth_context()
    for key in ("peer_spiffe_id", "peer_uri"):
        values = auth.get(key)
        if values:
            return values[0].decode()
    return None


def identity_from_env(log: Any) -> Identity | None:
    """This replica's Identity when TLS_* are set, else None (every hop plain)."""
    files = TlsFiles.from_env()
    return Identity(files, log) if files is not None else None
