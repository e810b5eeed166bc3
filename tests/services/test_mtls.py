"""Mutual TLS between real service processes (auth, users, payments) with certificates of a CA of the test's own,
made by the lab's PKI (chaoslab.lab.pki): who can open a connection, who may call whom (the call graph), what a
refusal looks like (403 problem / PERMISSION_DENIED, metrics, a log line) and a renewal picked up without a restart.

The certificates are the lab's kind: a SPIFFE ID as URI SAN and the identity's name as DNS SAN; a caller is checked
by the callee against services/contract.py's call graph (orders may call payments and users; the gateway may call
users but not payments; notifications calls only auth)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from chaoslab.lab.pki import Authority, Pki
from services.proto import payments_pb2, payments_pb2_grpc
from support.procs import PortPool, ServiceProc, sqlite_url, start
from support.waiting import eventually

pytestmark = pytest.mark.services

PORTS = PortPool(23800, 23899)
ADMIN_TOKEN = "mtls-test-admin"
HOLDERS = ("auth-1", "users-1", "payments-1", "orders-1", "gateway-1", "notifications-1")
TTL_S = 3600


def metric(proc: ServiceProc, name: str, **labels: str) -> float:
    text = requests.get(proc.admin_url + "/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


class Shop:
    def __init__(self, tmp: Path) -> None:
        self.pki = Pki(tmp / "pki")
        ca = self.pki.ensure_ca()
        for holder in HOLDERS:
            self.pki.issue(holder, holder.rsplit("-", 1)[0], TTL_S, addresses=("127.0.0.1",), authority=ca)
        self.tmp = tmp
        self.procs: list[ServiceProc] = []

    def tls_env(self, holder: str) -> dict[str, str]:
        return {"TLS_CERT_FILE": str(self.pki.cert_file(holder)), "TLS_KEY_FILE": str(self.pki.key_file(holder)),
                "TLS_CA_FILE": str(self.pki.ca_file), "TLS_RELOAD_S": "0.5"}

    def start(self, service: str, env: dict[str, str], **kw: Any) -> ServiceProc:
        full = {"ADMIN_TOKEN": ADMIN_TOKEN, "DATABASE_URL": sqlite_url(self.tmp / f"{service}.db"),
                **self.tls_env(f"{service}-1"), **env}
        proc = start(service, full, ports=PORTS, log_dir=self.tmp / "logs", name=f"{service}-1", **kw)
        self.procs.append(proc)
        return proc

    def boot(self) -> None:
        self.auth = self.start("auth", {})
        auth_url = f"https://127.0.0.1:{self.auth.http_port}"
        self.users = self.start("users", {"AUTH_URL": auth_url})
        self.grpc_port = PORTS.take()
        self.payments = self.start("payments", {"AUTH_URL": auth_url, "GRPC_PORT": str(self.grpc_port),
                                                "PROVIDER_LATENCY_MS": "5", "PROVIDER_JITTER_MS": "1"},
                                   public=False)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    # -- clients ---------------------------------------------------------------------------------------------------
    def context(self, holder: str | None, pki: Pki | None = None) -> ssl.SSLContext:
        """A client context trusting the test's CA, presenting `holder`'s certificate (from `pki`) if given."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        if holder is not None:
            source = pki or self.pki
            context.load_cert_chain(source.cert_file(holder), source.key_file(holder))
        return context

    def charge(self, credentials: grpc.ChannelCredentials | None, key: str) -> payments_pb2.ChargeReply:
        target = f"127.0.0.1:{self.grpc_port}"
        options = [("grpc.ssl_target_name_override", "payments")]
        channel = (grpc.secure_channel(target, credentials, options=options) if credentials is not None
                   else grpc.insecure_channel(target))
        with channel:
            request = payments_pb2.ChargeRequest(idempotency_key=key, user_id="u-1", order_ref="o-1",
                                                 amount_cents=100, currency="EUR")
            return payments_pb2_grpc.PaymentsStub(channel).Charge(request, timeout=5)

    def credentials(self, holder: str | None) -> grpc.ChannelCredentials:
        ca = self.pki.ca_file.read_bytes()
        if holder is None:
            return grpc.ssl_channel_credentials(root_certificates=ca)
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=self.pki.key_file(holder).read_bytes(),
                                            certificate_chain=self.pki.cert_file(holder).read_bytes())

    def https_get(self, proc: ServiceProc, path: str, context: ssl.SSLContext,
                  server_name: str) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS request over a raw TLS socket (requests cannot take a client context and a server name)."""
        with socket.create_connection(("127.0.0.1", proc.http_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        if not data:  # TLS 1.3: a server that refuses the client's certificate does so after the client's handshake
            raise ConnectionError("the server closed the connection without an answer")
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body

    def served_serial(self, port: int, server_name: str) -> int:
        """The serial of the certificate a server presents on a new connection."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                self.context("orders-1").wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    shop = Shop(tmp_path_factory.mktemp("mtls"))
    try:
        shop.boot()
        yield shop
    finally:
        shop.stop()


def test_a_direct_call_to_payments_without_a_client_certificate_fails(shop: Shop) -> None:
    before = metric(shop.payments, "payments_processed_total")
    for credentials in (None, shop.credentials(None)):  # plain, then TLS without a certificate of its own
        with pytest.raises(grpc.RpcError) as refused:
            shop.charge(credentials, "no-certificate")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert metric(shop.payments, "payments_processed_total") == before  # nothing reached the servicer
    # the same caller with orders' certificate (the call graph's caller) is charged: the refusal was the certificate
    assert shop.charge(shop.credentials("orders-1"), "with-certificate").status == "captured"


def test_the_gateway_certificate_cannot_call_payments(shop: Shop) -> None:
    labels = {"caller": "gateway", "callee": "payments", "protocol": "grpc"}
    before = metric(shop.payments, "authz_denied_total", **labels)
    with pytest.raises(grpc.RpcError) as refused:
        shop.charge(shop.credentials("gateway-1"), "gateway-charges")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "gateway may not call payments" in refused.value.details()
    assert metric(shop.payments, "authz_denied_total", **labels) == before + 1
    eventually(lambda: any('"caller refused"' in line and "spiffe://chaoslab/ns/lab/sa/gateway" in line
                           for line in shop.payments.log_path.read_text().splitlines()), 10, 0.2,
               "payments logs the refusal, naming the caller")
    assert shop.charge(shop.credentials("orders-1"), "orders-charges").status == "captured"


def test_users_answers_its_callers_and_refuses_the_rest(shop: Shop) -> None:
    # orders may call users: the request reaches the handler (401: no user token)
    status, _, _ = shop.https_get(shop.users, "/users/me", shop.context("orders-1"), "users")
    assert status == 401
    # notifications may not: 403 problem+json, counted by caller and callee
    labels = {"caller": "notifications", "callee": "users", "protocol": "http"}
    before = metric(shop.users, "authz_denied_total", **labels)
    status, headers, body = shop.https_get(shop.users, "/users/me", shop.context("notifications-1"), "users")
    assert status == 403 and headers["content-type"].startswith("application/problem+json")
    assert b"https://chaoslab.dev/problems/caller-not-allowed" in body and b"notifications may not call users" in body
    assert metric(shop.users, "authz_denied_total", **labels) == before + 1


def test_no_expired_untrusted_or_missing_certificate_gets_a_connection(shop: Shop) -> None:
    now = dt.datetime.now(dt.UTC)
    shop.pki.issue("expired", "orders", 0, addresses=("127.0.0.1",), not_before=now - dt.timedelta(hours=2),
                   not_after=now - dt.timedelta(hours=1))
    rogue = Pki(shop.tmp / "rogue")
    rogue.issue("orders-1", "orders", TTL_S, addresses=("127.0.0.1",), authority=Authority.create("rogue CA"))
    cases = [("no_certificate", shop.context(None)), ("expired", shop.context("expired")),
             ("unknown_ca", shop.context("orders-1", rogue))]
    for reason, context in cases:
        labels = {"side": "server", "reason": reason}
        before = metric(shop.users, "tls_handshake_failures_total", **labels)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            shop.https_get(shop.users, "/users/me", context, "users")
        eventually(lambda labels=labels, before=before:
                   metric(shop.users, "tls_handshake_failures_total", **labels) == before + 1,
                   5, 0.1, f"users counts a {labels['reason']} handshake")


def test_a_caller_checks_the_name_of_the_service_it_calls(shop: Shop) -> None:
    """users' certificate is the CA's, but made for users: a client that meant to call payments refuses it."""
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|doesn't match"):
        shop.https_get(shop.users, "/users/me", shop.context("orders-1"), "payments")


def test_a_renewed_certificate_is_served_without_a_restart(shop: Shop) -> None:
    loads = metric(shop.users, "tls_certificate_loads_total")
    old = shop.served_serial(shop.users.http_port, "users")
    old_grpc = shop.served_serial(shop.grpc_port, "payments")
    # a connection opened before the renewal
    with socket.create_connection(("127.0.0.1", shop.users.http_port), timeout=5) as raw, \
            shop.context("orders-1").wrap_socket(raw, server_hostname="users") as before_renewal:
        renewed = shop.pki.issue("users-1", "users", TTL_S, addresses=("127.0.0.1",))
        grpc_renewed = shop.pki.issue("payments-1", "payments", TTL_S, addresses=("127.0.0.1",))
        eventually(lambda: shop.served_serial(shop.users.http_port, "users") == renewed.serial, 10, 0.2,
                   "users serves the renewed certificate")
        before_renewal.sendall(b"GET /users/me HTTP/1.1\r\nHost: users\r\nConnection: close\r\n\r\n")
        assert before_renewal.recv(12).startswith(b"HTTP/1.1 401")  # it kept working across the renewal
    assert renewed.serial != old
    eventually(lambda: shop.served_serial(shop.grpc_port, "payments") == grpc_renewed.serial, 10, 0.2,
               "payments serves its renewed certificate to new connections")
    assert grpc_renewed.serial != old_grpc
    assert metric(shop.users, "tls_certificate_loads_total") == loads + 1
    assert all(proc.running() for proc in shop.procs)
    assert shop.charge(shop.credentials("orders-1"), "after-renewal").status == "captured"
