"""The lab's certificate authority: every replica, the lab's RabbitMQ node and the lab's own tools get a
short-lived certificate carrying their SPIFFE ID (services/contract.py: spiffe://chaoslab/ns/lab/sa/<name>) as a
URI SAN, signed by a CA that exists for one lab only. X.509 and keys come from the `cryptography` package; nothing
here is home-made crypto, only the choice of what goes into a certificate.

Layout (STATE/pki, 0700; every file 0600, keys included, written atomically):

    ca.pem, ca.key          the lab's CA (ECDSA P-256), made at `chaoslab up`, removed with the rest at `down`
    <holder>/cert.pem       the holder's certificate; holders: replicas (`orders-2`), `rabbitmq`, `chaoslab`
    <holder>/key.pem        its private key (a new key at every issue: rotation renews keys too)
    faults.json             the holders whose certificate is a fault (chaoslab.lab.certfaults), until when

What a certificate says: subject CN = the identity's name; SANs: the SPIFFE ID (URI, what a callee authorizes),
the name as a DNS name (what a caller checks, e.g. `payments`: services.kit.tls verifies a server by the name of the
service it meant to call) and the holder's addresses (RabbitMQ's clients check the broker by its address); key usage
for both TLS sides (a replica serves and calls with one identity). A replica's certificate lives `ttl_s` (the lab's
`--cert-ttl`, an hour by default, as SPIRE's SVIDs) and is renewed at half its life by the lab's `certs` program
(chaoslab.lab.rotation); the services reload the files without a restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chaoslab.errors import LabError
from services import contract

CA_TTL = dt.timedelta(days=30)  # longer than any lab stays up; a new lab (`up` after `down`) makes a new CA
DEFAULT_CERT_TTL_S = 3600
MIN_CERT_TTL_S = 10  # below this, renewal at half-life would race the services' reload (every TLS_RELOAD_S)
RENEW_AT = 0.5  # of a certificate's life: renew then, so a failed renewal has the other half to be retried
# Clocks of the holders may be a little behind the CA's: a certificate is valid from a minute before its issue.
BACKDATE = dt.timedelta(seconds=60)
CA_NAME = "chaoslab lab CA"
OPERATOR = contract.OPERATOR_IDENTITY
BROKER = contract.BROKER_IDENTITY


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: the cheapest handshake of the curves every peer here speaks (OpenSSL, BoringSSL in gRPC, Erlang).
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Written whole or not at all (a reader never sees half a key), readable by the lab's user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Issued:
    holder: str
    identity: str  # the name in the SPIFFE ID
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime


class Authority:
    """A CA: its key and certificate, and the certificates it signs."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str = CA_NAME, ttl: dt.timedelta = CA_TTL) -> Authority:
        key = new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chaoslab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def sign(self, identity: str, key: ec.EllipticCurvePrivateKey, *, not_before: dt.datetime,
             not_after: dt.datetime, addresses: tuple[str, ...] = (), uri: str | None = None) -> x509.Certificate:
        """A leaf certificate for `identity` (its SPIFFE ID as URI SAN, unless `uri` says another), valid from
        `not_before` to `not_after`, for the public part of `key`."""
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri or contract.spiffe_id(identity)),
                                        x509.DNSName(identity)]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chaoslab"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )


@dataclass(frozen=True)
class Pki:
    """The files of a lab's PKI under STATE/pki."""

    root: Path

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.root / "ca.key"

    @property
    def faults_file(self) -> Path:
        return self.root / "faults.json"

    def holder_dir(self, holder: str) -> Path:
        return self.root / holder

    def cert_file(self, holder: str) -> Path:
        return self.holder_dir(holder) / "cert.pem"

    def key_file(self, holder: str) -> Path:
        return self.holder_dir(holder) / "key.pem"

    def exists(self) -> bool:
        return self.ca_file.exists() and self.ca_key_file.exists()

    # -- the CA ------------------------------------------------------------------------------------------------------
    def ensure_ca(self) -> Authority:
        """The lab's CA: the one in the state dir, else a new one written there."""
        if self.exists():
            return self.authority()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        ca = Authority.create()
        write_private(self.ca_key_file, key_pem(ca.key))
        write_private(self.ca_file, cert_pem(ca.cert))
        return ca

    def authority(self) -> Authority:
        try:
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read the lab's CA in {self.root}: {exc}",
                           hint="chaoslab down, then chaoslab up makes a new one") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise LabError(f"the lab's CA key in {self.ca_key_file} is not an EC key")
        return Authority(key, cert)

    # -- leaf certificates -------------------------------------------------------------------------------------------
    def issue(self, holder: str, identity: str, ttl_s: float, *, addresses: tuple[str, ...] = (),
              authority: Authority | None = None, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Issued:
        """Write a new key and a certificate for `identity` into the holder's directory: the key first, so that a
        reader that sees the new certificate finds its key (services.kit.tls retries a pair that does not match).
        By default signed by the lab's CA, valid from now (backdated a little) for `ttl_s`."""
        ca = authority or self.authority()
        key = new_key()
        start = not_before or _now() - BACKDATE
        end = not_after or _now() + dt.timedelta(seconds=ttl_s)
        cert = ca.sign(identity, key, not_before=start, not_after=end, addresses=addresses)
        write_private(self.key_file(holder), key_pem(key))
        write_private(self.cert_file(holder), cert_pem(cert))
        return Issued(holder, identity, cert.serial_number, start, end)

    def read(self, holder: str) -> x509.Certificate | None:
        """The holder's certificate as it is on disk now; None when it has none (or it is unreadable)."""
        try:
            return x509.load_pem_x509_certificate(self.cert_file(holder).read_bytes())
        except (OSError, ValueError):
            return None

    def holders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "cert.pem").exists())

    def remove(self) -> bool:
        """Everything of the PKI (keys first in mind: nothing of it outlives the lab). Whether there was any."""
        if not self.root.exists():
            return False
        shutil.rmtree(self.root)
        return True


def identity_of(holder: str) -> str:
    """The identity a holder carries: a replica's service (`orders-2` -> `orders`), else the holder's own name."""
    service, _, number = holder.rpartition("-")
    if number.isdigit() and service in contract.SERVICE_NAMES:
        return service
    if holder in contract.IDENTITIES:
        return holder
    raise LabError(f"no identity for {holder!r}: a replica (<service>-<n>), {BROKER} or {OPERATOR}")


def spiffe_uri(cert: x509.Certificate) -> str | None:
    """The certificate's URI SAN (its SPIFFE ID), None without one."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
