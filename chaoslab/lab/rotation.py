"""The lab's `certs` program (a supervisord program of every lab with mutual TLS): it renews each certificate of
the lab at half its life (a new key too), ends the certificate faults whose TTL ran out (chaoslab.lab.certfaults),
and tells the broker when its own certificate was renewed (RabbitMQ caches the files it read: clearing Erlang's PEM
cache makes the next handshake read the new ones). The replicas notice renewed files by themselves
(services/kit/tls.py) and load them without a restart.

It serves GET /health and GET /certificates ({"certificates": {holder: {"identity", "serial", "not_after",
"renewals"}}, "renewed_at"}) on 127.0.0.1:B+24, and logs one JSON line per renewal (serials and dates, never a key).

    python -m chaoslab.lab.rotation --state-dir STATE
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from chaoslab.lab import certfaults, status_server
from chaoslab.lab.binaries import find_binaries
from chaoslab.lab.certs import holders, issue, pki_of, renewal_due
from chaoslab.lab.pki import BROKER, spiffe_uri
from chaoslab.lab.spec import LabSpec, load_spec

MAX_ROUND_S = 5.0
BROKER_RELOAD_TIMEOUT_S = 60.0


def round_s(spec: LabSpec) -> float:
    """How often to look: a tenth of a certificate's life, at most every 5 s (renewal is due at half of it)."""
    return max(1.0, min(MAX_ROUND_S, spec.cert_ttl_s / 10))


def _log(message: str, **fields: Any) -> None:
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "message": message, **fields}),
          flush=True)


def reload_broker_certificate(spec: LabSpec) -> bool:
    """Make the lab's RabbitMQ node read its renewed certificate at the next handshake."""
    from chaoslab.lab.programs import in_namespace, rabbitmq_env  # the programs' module imports this one's peers

    command = in_namespace(spec, BROKER, [str(find_binaries().rabbitmqctl), "-n", spec.node_name, "-q", "eval",
                                          "ssl:clear_pem_cache()."])
    try:
        done = subprocess.run(command, env={**os.environ, **rabbitmq_env(spec)}, capture_output=True, text=True,
                              timeout=BROKER_RELOAD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log("broker certificate reload failed", error=repr(exc))
        return False
    if done.returncode != 0:
        _log("broker certificate reload failed", error=(done.stderr or done.stdout).strip()[:300])
    return done.returncode == 0


class Rotator:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.renewals: dict[str, int] = {}
        self.renewed_at = 0.0
        self.started = False
        self.lock = threading.Lock()

    def round(self) -> float:
        """One look at every certificate; the pause before the next."""
        spec = load_spec(self.state_dir)
        for fault in certfaults.reap(spec):
            _log("certificate fault ended (TTL)", fault=fault.id, holder=fault.holder, kind=fault.kind)
        under_fault = set(certfaults.active(spec))
        now = dt.datetime.now(dt.UTC)
        renewed = []
        pki = pki_of(spec)
        for holder in holders(spec):
            if holder in under_fault or not renewal_due(pki, holder, now):
                continue
            issued = issue(spec, holder)
            renewed.append(holder)
            with self.lock:
                self.renewals[holder] = self.renewals.get(holder, 0) + 1
            _log("certificate renewed", holder=holder, identity=issued.identity, serial=f"{issued.serial:x}",
                 not_after=issued.not_after.isoformat())
        if BROKER in renewed:
            reload_broker_certificate(spec)
        if renewed:
            self.renewed_at = time.time()
        self.started = True
        return round_s(spec)

    def view(self) -> dict[str, Any]:
        spec = load_spec(self.state_dir)
        pki = pki_of(spec)
        out = {}
        for holder in holders(spec):
            cert = pki.read(holder)
            if cert is None:
                continue
            with self.lock:
                renewals = self.renewals.get(holder, 0)
            out[holder] = {"identity": spiffe_uri(cert), "serial": f"{cert.serial_number:x}",
                           "not_after": cert.not_valid_after_utc.timestamp(), "renewals": renewals}
        return {"certificates": out, "renewed_at": self.renewed_at}

    def run(self) -> None:
        while True:
            try:
                pause = self.round()
            except Exception as exc:  # noqa: BLE001 - a bad round must not end the renewals; say why, go on
                _log("round failed", error=repr(exc))
                pause = MAX_ROUND_S
            time.sleep(pause)


def serve(rotator: Rotator, port: int) -> ThreadingHTTPServer:
    return status_server.serve(port, {"/health": status_server.health(lambda: rotator.started),
                                      "/certificates": lambda: (rotator.view(), 200)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaoslab.lab.rotation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    spec = load_spec(args.state_dir)
    if not spec.tls:
        print("the certs program serves labs with mutual TLS only", file=sys.stderr)
        return 2
    rotator = Rotator(args.state_dir)
    serve(rotator, spec.ports.certs)
    _log("started", cert_ttl_s=spec.cert_ttl_s, round_s=round_s(spec))
    rotator.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
