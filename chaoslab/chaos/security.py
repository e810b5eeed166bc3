"""Chaos Toolkit actions and probes of the security faults (a native lab with mutual TLS, the default):

- a replica's certificate made bad (chaoslab.lab.certfaults): `expire_certificate`, `untrust_certificate` (signed by
  a CA nobody trusts), `impersonate` (another service's identity, e.g. the gateway presenting payments'); each with a
  TTL (the lab's `certs` program restores the replica after it, even when this process died), attested before the
  action returns: the replica's own log says it loaded exactly that certificate. `restore_certificates` is the
  rollback;
- a caller outside the call graph: `call_outside_graph` calls a service, for a while, with the certificate of a
  service that may not call it (a compromised replica's), and returns what each call got: a callee that answers
  instead of refusing fails the activity;
- probes: `call_as` (one such call), `tls_handshakes` (how a caller's handshakes with a service end),
  `handshake_failures` and `denied_calls` (from Prometheus).

Every function is synchronous and returns JSON-serialisable data for the journal. The extension exports the
actions from chaoslab.chaos.actions and the probes from chaoslab.chaos.probes, as every other.
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import requests
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos import marks
from chaoslab.chaos.lab import Configuration, Lab, activity_errors
from chaoslab.lab import certfaults
from chaoslab.lab.certs import pki_of
from chaoslab.lab.probes import poll
from chaoslab.lab.spec import LabSpec, load_spec
from services import contract

DEFAULT_TTL_S = 60.0
ATTEST_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 3.0
OUTCOMES = ("denied", "answered", "refused")


def _spec(lab: Lab, what: str) -> LabSpec:
    if lab.state is None:
        raise ActivityFailed(f"{what} needs the native lab (its certificates); compose has none (docs/faults.md)")
    with activity_errors():
        spec = load_spec(lab.state)
    if not spec.tls:
        raise ActivityFailed(f"{what} needs a lab with mutual TLS; the lab in {lab.state} runs --tls off: "
                             f"chaoslab down --state-dir {lab.state}, then chaoslab up (mutual TLS is the default)")
    return spec


def _loaded_serials(spec: LabSpec, holder: str) -> list[str]:
    """The serials of the certificates a replica logged as loaded, in order (never anything of a key)."""
    try:
        lines = spec.paths.log_file(holder).read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        if '"certificate loaded"' not in line:
            continue
        try:
            out.append(str(json.loads(line).get("serial")))
        except json.JSONDecodeError:
            continue
    return out


def _attest_loaded(spec: LabSpec, holder: str, serial: str, timeout_s: float = ATTEST_TIMEOUT_S) -> float:
    """Seconds until `holder` logged that it loaded the certificate `serial`; ActivityFailed otherwise."""
    found, waited = poll(lambda: serial in _loaded_serials(spec, holder), timeout_s, 0.25)
    if not found:
        raise ActivityFailed(f"{holder} did not load certificate {serial} within {timeout_s:g} s (its log says "
                             f"{_loaded_serials(spec, holder)[-3:]})")
    return round(waited, 2)


def _holder(spec: LabSpec, service: str, replica: int | str) -> str:
    holder = f"{service}-{replica}" if str(replica).isdigit() else str(replica)
    if holder not in spec.replica_names(service):
        raise ActivityFailed(f"no replica {holder} (replicas of {service}: {', '.join(spec.replica_names(service))})")
    return holder


def _certificate_fault(kind: str, service: str, replica: int | str, ttl_s: float, identity: str | None,
                       configuration: Configuration) -> dict[str, Any]:
    spec = _spec(Lab.of(configuration), f"a {kind} certificate")
    holder = _holder(spec, service, replica)
    with activity_errors():
        fault = certfaults.inject(spec, holder, kind, float(ttl_s), identity=identity)
    marks.mark("fault")
    try:
        seconds = _attest_loaded(spec, holder, fault.serial)
    except BaseException:
        certfaults.restore(spec, holder)
        raise
    return {**fault.as_dict(), "attestation": {"loaded_by": holder, "serial": fault.serial, "seconds": seconds}}


def expire_certificate(service: str, replica: int | str = 1, ttl_s: float = DEFAULT_TTL_S,
                       configuration: Configuration = None) -> dict[str, Any]:
    """The replica serves and calls with a certificate of the lab's CA that expired an hour ago: its peers
    refuse the handshake, and its own tls_certificate_expiry_timestamp_seconds says so (CertificateExpiringSoon)."""
    return _certificate_fault("expired", service, replica, ttl_s, None, configuration)


def untrust_certificate(service: str, replica: int | str = 1, ttl_s: float = DEFAULT_TTL_S,
                        configuration: Configuration = None) -> dict[str, Any]:
    """The replica's certificate, right identity and dates, signed by a CA nobody in the lab trusts: every
    handshake with it fails (TLSHandshakeFailures)."""
    return _certificate_fault("untrusted", service, replica, ttl_s, None, configuration)


def impersonate(service: str, identity: str, replica: int | str = 1, ttl_s: float = DEFAULT_TTL_S,
                configuration: Configuration = None) -> dict[str, Any]:
    """The replica holds a valid certificate of another service (`identity`), e.g. the gateway with payments':
    the services it calls refuse that caller (CallerNotAllowed), and callers of its own refuse it as a server."""
    return _certificate_fault("impersonate", service, replica, ttl_s, identity, configuration)


def restore_certificates(service: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """End the certificate faults (of `service`'s replicas, or all): each replica gets a fresh certificate of its
    own identity and is seen loading it. Every security experiment's rollback."""
    lab = Lab.of(configuration)
    if lab.state is None:
        return {"restored": []}
    spec = load_spec(lab.state)
    if not spec.tls:
        return {"restored": []}
    restored = []
    with activity_errors():
        for holder in list(certfaults.active(spec)):
            if service is not None and not holder.startswith(f"{service}-"):
                continue
            certfaults.restore(spec, holder)
            cert = pki_of(spec).read(holder)
            if cert is not None and holder in [n for s in contract.SERVICE_NAMES for n in spec.replica_names(s)]:
                _attest_loaded(spec, holder, f"{cert.serial_number:x}")
            restored.append(holder)
    if restored:
        marks.mark("recovery")
    return {"restored": restored}


# -- a caller outside the call graph ------------------------------------------------------------------------------

def _call(spec: LabSpec, reg: dict[str, Any], identity: str, target: str, replica: int) -> str:
    """One call to `target` with the certificate of `identity`'s replica: denied (403 caller-not-allowed or
    PERMISSION_DENIED), answered (anything else: the callee let the caller in), or refused (no TLS connection)."""
    pki = pki_of(spec)
    holder = f"{identity}-{replica}"
    cert, key, ca = pki.cert_file(holder), pki.key_file(holder), pki.ca_file
    if contract.facts(target).is_grpc:
        from services.proto import payments_pb2, payments_pb2_grpc

        credentials = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
        with grpc.secure_channel(reg["services"][target]["grpc_addr"], credentials,
                                 options=[("grpc.ssl_target_name_override", target)]) as channel:
            try:
                # an empty request: refused by authorization, or answered INVALID_ARGUMENT; never a charge
                payments_pb2_grpc.PaymentsStub(channel).Charge(payments_pb2.ChargeRequest(), timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code == grpc.StatusCode.PERMISSION_DENIED:
                    return "denied"
                return "refused" if code == grpc.StatusCode.UNAVAILABLE else "answered"
            return "answered"
    url = reg["services"][target]["url"]
    try:
        # a path no service serves: a 404 means the caller was let in, the 403 problem that it was not
        # (requests checks the server by the URL's address, which the lab's certificates name too)
        answer = requests.get(f"{url}/chaoslab-security-probe", cert=(str(cert), str(key)), verify=str(ca),
                              timeout=CALL_TIMEOUT_S)
    except requests.exceptions.RequestException:
        return "refused"
    denied = answer.status_code == 403 and "caller-not-allowed" in answer.text
    return "denied" if denied else "answered"


def _check_caller(identity: str, target: str) -> None:
    if identity not in contract.SERVICE_NAMES or target not in contract.SERVICE_NAMES:
        raise ActivityFailed(f"identity and target are services: {', '.join(contract.SERVICE_NAMES)}")
    if contract.is_edge(target):
        raise ActivityFailed(f"{target} is the shop's edge: it takes anyone (users, by their tokens)")


def call_as(identity: str, target: str, replica: int = 1, expect: str | None = None,
            configuration: Configuration = None) -> str:
    """One call to `target` with `identity`'s certificate: "denied", "answered" or "refused"; with `expect`, any
    other outcome fails the activity."""
    lab = Lab.of(configuration)
    spec = _spec(lab, "call_as")
    _check_caller(identity, target)
    with activity_errors():
        outcome = _call(spec, lab.registry, identity, target, int(replica))
    if expect is not None and outcome != expect:
        allowed = target in contract.facts(identity).calls
        raise ActivityFailed(f"{identity} -> {target}: {outcome}, expected {expect} (the call graph "
                             f"{'allows' if allowed else 'does not allow'} it)")
    return outcome


def call_outside_graph(identity: str, target: str, duration_s: float = 20.0, rate: float = 2.0, replica: int = 1,
                       expect: str = "denied", configuration: Configuration = None) -> dict[str, Any]:
    """For `duration_s` (its TTL: it stops by itself), `rate` calls a second to `target` with the certificate of
    `identity`'s replica, a service the call graph does not let call it (a compromised replica trying its luck).
    Every call must end `expect` ("denied": the callee's authorization refused it); one that does not fails the
    activity, after the whole duration. Returns the outcomes counted."""
    if expect not in OUTCOMES:
        raise ActivityFailed(f"expect is one of {', '.join(OUTCOMES)}, got {expect!r}")
    lab = Lab.of(configuration)
    spec = _spec(lab, "call_outside_graph")
    _check_caller(identity, target)
    if target in contract.facts(identity).calls:
        raise ActivityFailed(f"{identity} may call {target} (services/contract.py): that call is inside the graph")
    counts = dict.fromkeys(OUTCOMES, 0)
    marks.mark("fault")
    deadline = time.monotonic() + float(duration_s)
    with activity_errors():
        while time.monotonic() < deadline:
            started = time.monotonic()
            counts[_call(spec, lab.registry, identity, target, int(replica))] += 1
            time.sleep(max(0.0, 1.0 / float(rate) - (time.monotonic() - started)))
    marks.mark("recovery")
    unexpected = {k: v for k, v in counts.items() if k != expect and v}
    if unexpected or not counts[expect]:
        raise ActivityFailed(f"{identity} -> {target}: {counts}, expected every call {expect}")
    return {"identity": contract.spiffe_id(identity), "target": target, "calls": sum(counts.values()), **counts}


def tls_handshakes(target: str, attempts: int = 20, min_refused: int = 0, reason: str | None = None,
                   configuration: Configuration = None) -> dict[str, int]:
    """Open `attempts` TLS connections to `target`'s port as a caller of the lab would (the lab's tools'
    certificate, checking the server by `target`'s name) and count how each handshake ended: "ok" or the reason
    it failed (expired, unknown_ca, wrong_name, bad_certificate, other). Replicas share the port, so the attempts
    spread over them. With `min_refused`, fewer refusals (of `reason`, if given) fail the activity."""
    import socket
    import ssl

    from services.kit.handshakes import reason_of

    lab = Lab.of(configuration)
    _spec(lab, "tls_handshakes")
    entry = lab.registry["services"][target]
    host, _, port = (entry.get("grpc_addr") or entry["url"].split("//", 1)[1]).rpartition(":")
    files = lab.registry["tls"]["operator"]
    context = ssl.create_default_context(cafile=files["ca_file"])
    context.load_cert_chain(files["cert_file"], files["key_file"])
    counts: dict[str, int] = {}
    for _ in range(int(attempts)):
        try:
            with socket.create_connection((host, int(port)), timeout=CALL_TIMEOUT_S) as raw, \
                    context.wrap_socket(raw, server_hostname=target):
                outcome = "ok"
        except ssl.SSLError as exc:
            outcome = reason_of(exc)
        except OSError:
            outcome = "unreachable"
        counts[outcome] = counts.get(outcome, 0) + 1
    refused = sum(n for k, n in counts.items() if k not in ("ok", "unreachable") and (reason is None or k == reason))
    if refused < int(min_refused):
        raise ActivityFailed(f"{refused} of {attempts} handshakes with {target} refused"
                             f"{f' ({reason})' if reason else ''}, expected at least {min_refused}: {counts}")
    return counts


# -- probes ----------------------------------------------------------------------------------------------------------

def _sum(lab: Lab, query: str) -> float:
    with activity_errors():
        return float(sum(sample.value for sample in lab.prometheus.query(query)))


def handshake_failures(window: str = "1m", side: str | None = None, configuration: Configuration = None) -> float:
    """Failed TLS handshakes counted by the replicas over `window` (server and client side, or `side`)."""
    selector = f'{{side="{side}"}}' if side else ""
    return _sum(Lab.of(configuration), f"sum(increase(tls_handshake_failures_total{selector}[{window}]))")


def denied_calls(caller: str | None = None, callee: str | None = None, window: str = "1m",
                 configuration: Configuration = None) -> float:
    """Calls refused by caller identity over `window` (of `caller` to `callee`, or all)."""
    matchers = ",".join(f'{k}="{v}"' for k, v in (("caller", caller), ("callee", callee)) if v)
    return _sum(Lab.of(configuration), f"sum(increase(authz_denied_total{{{matchers}}}[{window}]))")


def wait_for_handshake_failures(min_failures: float = 1.0, window: str = "1m", timeout_s: float = 30.0,
                                configuration: Configuration = None) -> float:
    """Wait until the replicas counted at least `min_failures` failed handshakes over `window`."""
    seen, _ = poll(lambda: handshake_failures(window, configuration=configuration) >= min_failures, timeout_s, 1.0)
    if not seen:
        raise ActivityFailed(f"no {min_failures:g} failed TLS handshakes counted within {timeout_s:g} s")
    return handshake_failures(window, configuration=configuration)


ACTIONS = ["expire_certificate", "untrust_certificate", "impersonate", "restore_certificates", "call_outside_graph"]
PROBES = ["call_as", "tls_handshakes", "handshake_failures", "denied_calls", "wait_for_handshake_failures"]
__all__ = [*ACTIONS, *PROBES]
