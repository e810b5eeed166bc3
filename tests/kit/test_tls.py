"""The kit's mutual TLS without processes: its configuration, the identities of the contract, what the lab's CA puts
into a certificate, and the handshake counter on a real TLS handshake in this process (asyncio's SSL transport)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client import REGISTRY

from chaoslab.lab.pki import Authority, Pki, identity_of, spiffe_uri
from services import contract
from services.kit.config import ConfigError
from services.kit.handshakes import count_failed_handshakes, reason_of
from services.kit.tls import VARIABLES, TlsFiles

pytestmark = pytest.mark.quick
REPO = Path(__file__).resolve().parents[2]


def test_the_tls_variables_are_documented_with_their_defaults() -> None:
    text = (REPO / "docs" / "design.md").read_text()
    section = text[text.index("## Service environment (all services)"):text.index("\n## Ports")]
    rows = {name: line for line in section.splitlines() if line.startswith("|")
            for name in re.findall(r"`([A-Z_]+)`", line.split("|")[1])}
    for name in (*VARIABLES, "TLS_RELOAD_S"):
        assert name in rows, f"{name} is not in docs/design.md's environment table"
    assert "| `2` |" in rows["TLS_RELOAD_S"] and "unset" in rows["TLS_CERT_FILE"]


def test_tls_files_come_all_three_or_not_at_all(tmp_path: Path) -> None:
    assert TlsFiles.from_env({}) is None
    pem = tmp_path / "x.pem"
    pem.write_text("x")
    with pytest.raises(ConfigError, match="TLS_KEY_FILE, TLS_CA_FILE not set"):
        TlsFiles.from_env({"TLS_CERT_FILE": str(pem)})
    with pytest.raises(ConfigError, match="TLS_CA_FILE='/nowhere.pem': no readable file"):
        TlsFiles.from_env({"TLS_CERT_FILE": str(pem), "TLS_KEY_FILE": str(pem), "TLS_CA_FILE": "/nowhere.pem"})
    files = TlsFiles.from_env({"TLS_CERT_FILE": str(pem), "TLS_KEY_FILE": str(pem), "TLS_CA_FILE": str(pem)})
    assert files is not None and files.cert == pem


def test_identities_and_callers_come_from_the_call_graph() -> None:
    assert contract.spiffe_id("payments") == "spiffe://chaoslab/ns/lab/sa/payments"
    assert contract.identity_name("spiffe://chaoslab/ns/lab/sa/orders") == "orders"
    for foreign in ("spiffe://elsewhere/ns/lab/sa/orders", "spiffe://chaoslab/ns/other/sa/orders",
                    "spiffe://chaoslab/ns/lab/sa/mallory", None, ""):
        assert contract.identity_name(foreign) is None
    # written out here on purpose, as the NetworkPolicies' test does: who may call whom
    expected = {"gateway": (), "auth": ("gateway", "users", "orders", "payments", "notifications"),
                "users": ("gateway", "orders"), "orders": ("gateway",), "payments": ("orders",),
                "notifications": ("gateway",)}
    assert {s: contract.callers_of(s) for s in contract.SERVICE_NAMES} == expected
    assert [s for s in contract.SERVICE_NAMES if contract.is_edge(s)] == ["gateway"]
    with pytest.raises(KeyError, match="no identity"):
        contract.spiffe_id("mallory")


def test_a_lab_certificate_names_its_identity_and_only_it(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    ca = pki.ensure_ca()
    issued = pki.issue("orders-2", identity_of("orders-2"), 600, addresses=("10.70.80.51", "127.0.0.1"))
    cert = pki.read("orders-2")
    assert cert is not None and cert.serial_number == issued.serial
    assert spiffe_uri(cert) == "spiffe://chaoslab/ns/lab/sa/orders"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["orders"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.70.80.51", "127.0.0.1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(seconds=600) <= lifetime <= dt.timedelta(seconds=700)  # backdated a minute for skew
    cert.verify_directly_issued_by(ca.cert)
    with pytest.raises(ValueError):  # signed by the lab's CA, by no other
        cert.verify_directly_issued_by(Authority.create("another").cert)
    for path in (pki.ca_key_file, pki.key_file("orders-2"), pki.cert_file("orders-2")):
        assert path.stat().st_mode & 0o777 == 0o600
    assert pki.root.stat().st_mode & 0o777 == 0o700 and pki.holder_dir("orders-2").stat().st_mode & 0o777 == 0o700
    assert identity_of("rabbitmq") == "rabbitmq" and identity_of("chaoslab") == "chaoslab"
    assert pki.remove() and not pki.root.exists()


def _counted(side: str, reason: str) -> float:
    return REGISTRY.get_sample_value("tls_handshake_failures_total",
                                     {"side": side, "peer": "unknown", "reason": reason}) or 0.0


async def test_a_failed_handshake_is_counted_on_the_server(tmp_path: Path) -> None:
    """A client without a certificate against a server that requires one: asyncio keeps the failure to itself
    unless the kit counts it (handshakes.py)."""
    assert count_failed_handshakes()
    pki = Pki(tmp_path / "pki")
    pki.ensure_ca()
    pki.issue("users-1", "users", 600, addresses=("127.0.0.1",))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(pki.ca_file)
    server_context.load_cert_chain(pki.cert_file("users-1"), pki.key_file("users-1"))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    before = _counted("server", "no_certificate")
    client = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="users")
        await reader.read(1)  # TLS 1.3: the refusal comes after the client's side of the handshake
        writer.close()
    except (ssl.SSLError, ConnectionError):
        pass
    for _ in range(50):
        if _counted("server", "no_certificate") > before:
            break
        await asyncio.sleep(0.05)
    server.close()
    await server.wait_closed()
    assert _counted("server", "no_certificate") == before + 1


def test_handshake_reasons_say_what_to_do() -> None:
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_message = "certificate has expired"
    assert reason_of(expired) == "expired"
    unknown = ssl.SSLCertVerificationError(1, "certificate verify failed")
    unknown.verify_message = "unable to get local issuer certificate"
    assert reason_of(unknown) == "unknown_ca"
    wrong = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrong.verify_message = "Hostname mismatch, certificate is not valid for 'payments'."
    assert reason_of(wrong) == "wrong_name"
    assert reason_of(ValueError()) == "other"
