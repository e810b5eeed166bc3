"""A lab's certificates: who holds one (every replica, the broker, the lab's own tools), what addresses it names,
the environment that points a replica at its files, and issuing them (chaoslab.lab.pki does the signing).

`chaoslab up` makes the CA and issues every certificate before anything starts; `scale` issues the new replicas'
before they start; the `certs` program (chaoslab.lab.rotation) renews each at half its life; `down` removes them.
"""

from __future__ import annotations

import datetime as dt
import ssl

from chaoslab.lab.network import CLIENTS
from chaoslab.lab.pki import BROKER, OPERATOR, RENEW_AT, Authority, Issued, Pki, identity_of
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.spec import LOOPBACK_ADDRESS, LabSpec


def pki_of(spec: LabSpec) -> Pki:
    return Pki(spec.paths.pki)


def holders(spec: LabSpec) -> list[str]:
    """Everyone who gets a certificate: the broker, the lab's tools, every replica (in the lab's order)."""
    return [BROKER, OPERATOR] + [name for s in SERVICES for name in spec.replica_names(s)]


def addresses(spec: LabSpec, holder: str) -> tuple[str, ...]:
    """The IP SANs of a holder: where it is reached (clients of the broker check it by its address)."""
    if holder == BROKER:
        return (spec.broker_host, LOOPBACK_ADDRESS)
    if holder == OPERATOR:
        return (spec.net.address_of(CLIENTS),) if spec.isolated else (LOOPBACK_ADDRESS,)
    service, _, number = holder.rpartition("-")
    return (spec.replica_host(service, int(number)), spec.service_host(service), LOOPBACK_ADDRESS)


def issue(spec: LabSpec, holder: str, authority: Authority | None = None) -> Issued:
    """A fresh certificate and key for `holder`, valid for the lab's certificate lifetime."""
    return pki_of(spec).issue(holder, identity_of(holder), spec.cert_ttl_s, addresses=addresses(spec, holder),
                              authority=authority)


def issue_all(spec: LabSpec) -> list[Issued]:
    """The lab's CA (made when missing) and a fresh certificate for every holder."""
    ca = pki_of(spec).ensure_ca()
    return [issue(spec, holder, ca) for holder in holders(spec)]


def tls_env(spec: LabSpec, holder: str) -> dict[str, str]:
    """The variables that give a replica its identity (services/kit/tls.py)."""
    pki = pki_of(spec)
    return {"TLS_CERT_FILE": str(pki.cert_file(holder)), "TLS_KEY_FILE": str(pki.key_file(holder)),
            "TLS_CA_FILE": str(pki.ca_file)}


def operator_files(spec: LabSpec) -> dict[str, str]:
    """The lab's tools' own certificate (the chaos extension's AMQP publisher, tests): paths, for the registry."""
    pki = pki_of(spec)
    return {"cert_file": str(pki.cert_file(OPERATOR)), "key_file": str(pki.key_file(OPERATOR)),
            "ca_file": str(pki.ca_file)}


def operator_ssl_context(registry: dict[str, object]) -> ssl.SSLContext | None:
    """An SSL context with the lab's tools' certificate, for a lab whose registry says it speaks mutual TLS (the
    chaos extension's AMQP publisher); None for a plain lab or a compose stack."""
    tls = registry.get("tls")
    if not isinstance(tls, dict) or tls.get("mode") != "on":
        return None
    files = tls["operator"]
    context = ssl.create_default_context(cafile=files["ca_file"])  # the broker is checked by its address
    context.load_cert_chain(files["cert_file"], files["key_file"])
    return context


def renewal_due(pki: Pki, holder: str, now: dt.datetime) -> bool:
    """True when the holder has no readable certificate, or half of its certificate's life is gone."""
    cert = pki.read(holder)
    if cert is None:
        return True
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * RENEW_AT
