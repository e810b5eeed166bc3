"""Security faults on a replica's certificate: the replica loads a bad certificate the way it loads a renewal
(services/kit/tls.py), and its peers must refuse it.

- `expired`: signed by the lab's CA, with the right identity, but expired an hour ago;
- `untrusted`: the right identity and dates, signed by a CA nobody in the lab trusts (made for the fault, its key
  thrown away);
- `impersonate`: signed by the lab's CA, valid, but for another service's identity (e.g. the gateway holding
  payments' certificate): peers accept the certificate and then refuse the caller (authorization) or, as servers,
  fail the client's check of the name it meant to call.

Each fault is a record in STATE/pki/faults.json (holder -> kind, id, until): the `certs` program renews nothing
under a fault and gives the holder a fresh certificate once `until` passed (the TTL, even when whoever injected it
died); `restore()` is the rollback; `down` removes the whole PKI with them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from chaoslab.errors import LabError
from chaoslab.lab.certs import addresses, issue, pki_of
from chaoslab.lab.pki import Authority, Pki, identity_of, write_private
from chaoslab.lab.spec import LabSpec
from services import contract

KINDS = ("expired", "untrusted", "impersonate")
MAX_TTL_S = 3600


@dataclass(frozen=True)
class CertFault:
    id: str
    holder: str
    kind: str
    until: float  # unix time
    identity: str  # what the bad certificate says
    serial: str  # hex: the bad certificate, so a probe can tell it is the one served
    not_after: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _locked(pki: Pki) -> Iterator[dict[str, dict[str, Any]]]:
    """The records, read and written back under a lock (the chaos run and the `certs` program both change them)."""
    pki.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(pki.root / ".faults.lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            records = json.loads(pki.faults_file.read_text()) if pki.faults_file.exists() else {}
        except (OSError, json.JSONDecodeError):
            records = {}
        before = json.dumps(records, sort_keys=True)
        yield records
        if json.dumps(records, sort_keys=True) != before:
            write_private(pki.faults_file, (json.dumps(records, indent=2) + "\n").encode())


def active(spec: LabSpec) -> dict[str, CertFault]:
    """The faults on record, by holder (expired ones included until the `certs` program reaps them)."""
    with _locked(pki_of(spec)) as records:
        return {holder: CertFault(**record) for holder, record in records.items()}


def inject(spec: LabSpec, holder: str, kind: str, ttl_s: float, *, identity: str | None = None) -> CertFault:
    """Give `holder` (a replica) a bad certificate of `kind` for `ttl_s`. `identity`: whose certificate it gets
    (impersonate only)."""
    if not spec.tls:
        raise LabError(f"the lab in {spec.paths.state} runs --tls off: it has no certificates to break",
                       hint="chaoslab down, then chaoslab up (mutual TLS is on by default)")
    if kind not in KINDS:
        raise LabError(f"no certificate fault {kind!r}: choose one of {', '.join(KINDS)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise LabError(f"a certificate fault's TTL must be 0 < ttl_s <= {MAX_TTL_S}, got {ttl_s:g}")
    own = identity_of(holder)
    if holder not in [n for s in contract.SERVICE_NAMES for n in spec.replica_names(s)]:
        raise LabError(f"no replica {holder!r} in the lab (replicas: {', '.join(spec.replica_names(own))})")
    if kind == "impersonate":
        if identity not in contract.SERVICE_NAMES or identity == own:
            raise LabError(f"impersonate needs another service's identity than {own!r}, got {identity!r}")
    elif identity not in (None, own):
        raise LabError(f"a {kind} certificate carries the replica's own identity ({own}), not {identity!r}")
    pki = pki_of(spec)
    now = dt.datetime.now(dt.UTC)
    with _locked(pki) as records:
        if holder in records:
            raise LabError(f"{holder} has a certificate fault already ({records[holder]['kind']}, "
                           f"{records[holder]['id']})", hint="roll it back first (chaoslab faults --clear)")
        wears = identity or own
        if kind == "expired":
            issued = pki.issue(holder, own, 0, addresses=addresses(spec, holder),
                               not_before=now - dt.timedelta(hours=2), not_after=now - dt.timedelta(hours=1))
        elif kind == "untrusted":
            issued = pki.issue(holder, own, spec.cert_ttl_s, addresses=addresses(spec, holder),
                               authority=Authority.create("untrusted CA (chaoslab security fault)"))
        else:
            issued = pki.issue(holder, wears, spec.cert_ttl_s, addresses=addresses(spec, holder))
        fault = CertFault(id=f"cert-{uuid.uuid4().hex[:8]}", holder=holder, kind=kind, until=time.time() + ttl_s,
                          identity=wears, serial=f"{issued.serial:x}", not_after=issued.not_after.timestamp())
        records[holder] = fault.as_dict()
    return fault


def restore(spec: LabSpec, holder: str) -> CertFault | None:
    """End a holder's certificate fault: a fresh certificate of the lab's CA for its own identity. The fault
    ended, or None when it had none (a fresh certificate all the same)."""
    with _locked(pki_of(spec)) as records:
        record = records.pop(holder, None)
        issue(spec, holder)
    return CertFault(**record) if record else None


def reap(spec: LabSpec, now: float | None = None) -> list[CertFault]:
    """End every fault whose TTL ran out (the `certs` program, each round)."""
    now = time.time() if now is None else now
    ended = []
    with _locked(pki_of(spec)) as records:
        for holder, record in list(records.items()):
            if record["until"] <= now:
                records.pop(holder)
                issue(spec, holder)
                ended.append(CertFault(**record))
    return ended


def clear(spec: LabSpec) -> list[CertFault]:
    """End every certificate fault now (chaoslab faults --clear, restore after an interrupted run)."""
    return reap(spec, now=float("inf"))


def clear_lab(registry: dict[str, Any]) -> list[str]:
    """End every certificate fault of the native lab a registry describes (none for a compose stack or a lab
    without mutual TLS): the replicas that got their own certificate back."""
    if registry.get("tls", {}).get("mode") != "on":
        return []
    from chaoslab.lab.spec import load_spec

    return [fault.holder for fault in clear(load_spec(registry["state_dir"]))]
