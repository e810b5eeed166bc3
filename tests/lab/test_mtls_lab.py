"""Mutual TLS in a running lab (on by default): who gets an AMQP connection, whose private keys are where, and a
lab of the module's own whose certificates live 20 s, renewed every 10 s under a stream of orders that must not
lose one; `down` takes the whole PKI with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import requests
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from chaoslab.chaos import broker
from chaoslab.lab.pki import Pki
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.registry import find
from services.contract import ORDER_EVENTS_QUEUE
from support.lab import replica_args, run_chaoslab, start_lab, stop_lab
from support.waiting import eventually

pytestmark = pytest.mark.lab

CERT_TTL_S = 20  # renewed every 10 s
STREAM_S = 32


def amqp_connect(reg: dict[str, Any], context: ssl.SSLContext | None, url: str | None = None) -> None:
    async def go() -> None:
        connection = await aio_pika.connect(url or reg["broker"]["amqp_url"], timeout=5, ssl_context=context)
        await connection.close()

    asyncio.run(go())


def context_of(pki: Pki, holder: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if holder is not None:
        context.load_cert_chain(pki.cert_file(holder), pki.key_file(holder))
    return context


def test_only_the_identities_that_use_the_broker_get_an_amqp_connection(lab: dict[str, Any]) -> None:
    pki = Pki(Path(lab["state_dir"]) / "pki")
    port = lab["broker"]["amqp_url"].rsplit(":", 1)[1].split("/")[0]
    with pytest.raises((aio_pika.exceptions.AMQPConnectionError, ConnectionError, OSError)):
        amqp_connect(lab, None, f"amqp://guest:guest@127.0.0.1:{port}/")  # plain: no such listener any more
    with pytest.raises((aio_pika.exceptions.AMQPConnectionError, ConnectionError, OSError, ssl.SSLError)):
        amqp_connect(lab, context_of(pki, None))  # TLS without a certificate
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        amqp_connect(lab, context_of(pki, "users-1"))  # a certificate of the lab whose identity has no user there
    amqp_connect(lab, context_of(pki, "orders-1"))  # orders publishes: it gets one
    assert broker.queue_messages(lab, ORDER_EVENTS_QUEUE) >= 0  # and the lab's tools, with their own certificate


def test_private_keys_stay_private_and_out_of_the_logs(lab: dict[str, Any]) -> None:
    state = Path(lab["state_dir"])
    pki = Pki(state / "pki")
    keys = [pki.ca_key_file] + [pki.key_file(h) for h in pki.holders()]
    assert len(keys) >= 2 + sum(len(lab["services"][s]["replicas"]) for s in SERVICES)
    for key in keys:
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert pki.root.stat().st_mode & 0o777 == 0o700 and state.stat().st_mode & 0o777 == 0o700
    logs = list((state / "logs").glob("*.log"))
    assert logs and not [log for log in logs if b"PRIVATE KEY" in log.read_bytes()]
    loaded = (state / "logs" / "orders-1.log").read_text()
    assert '"certificate loaded"' in loaded and "spiffe://chaoslab/ns/lab/sa/orders" in loaded


# -- renewals under load ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory,
                lab_ports: tuple[Callable[[], int], Callable[[int], None]]) -> Iterator[dict[str, Any]]:
    reserve, release = lab_ports
    state = tmp_path_factory.mktemp("mtls-lab") / "state"
    base = reserve()
    try:
        yield start_lab(state, base, *replica_args("payments=2"), "--cert-ttl", str(CERT_TTL_S))
    finally:
        run_chaoslab("down", "--state-dir", state)  # idempotent: the last test stopped it already
        release(base)


def loads(replica: dict[str, Any]) -> float:
    text = requests.get(f"{replica['admin_url']}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "tls_certificate_loads_total")


def broker_serial(reg: dict[str, Any]) -> int:
    host, port = reg["broker"]["address"], int(reg["broker"]["amqp_url"].rsplit(":", 1)[1].split("/")[0])
    pki = Pki(Path(reg["state_dir"]) / "pki")
    with socket.create_connection((host, port), timeout=5) as raw, \
            context_of(pki, "chaoslab").wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_renewals_under_load_drop_no_request(short_lived: dict[str, Any], tmp_path: Path) -> None:
    state = Path(short_lived["state_dir"])
    replicas = [r for s in SERVICES for r in short_lived["services"][s]["replicas"]]
    before = {r["name"]: loads(r) for r in replicas}
    out = tmp_path / "stream.jsonl"
    stream = subprocess.Popen([sys.executable, "-m", "chaoslab.load.orderstream", "--state-dir", str(state),
                               "--rate", "6", "--workers", "6", "--out", str(out)],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        time.sleep(STREAM_S)
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(30)
    summary = json.loads(out.read_text().splitlines()[-1])["summary"]
    statuses = {int(k): v for k, v in summary["statuses"].items()}
    assert sum(statuses.values()) >= 0.5 * 6 * STREAM_S, summary  # the stream ran
    assert set(statuses) <= {200, 201}, f"requests failed while certificates were renewed: {summary}"
    renewals = requests.get(f"{short_lived['tls']['certs_url']}/certificates", timeout=5).json()["certificates"]
    for replica in replicas:  # every replica renewed and loaded its certificate at least twice meanwhile
        assert renewals[replica["name"]]["renewals"] >= 2, renewals[replica["name"]]
        assert loads(replica) >= before[replica["name"]] + 2, replica["name"]
    assert renewals["rabbitmq"]["renewals"] >= 2
    # the broker serves its latest certificate to new connections (its PEM cache was cleared at each renewal)
    def latest() -> int:
        cert = Pki(state / "pki").read("rabbitmq")
        assert cert is not None
        return cert.serial_number

    eventually(lambda: broker_serial(short_lived) == latest(), 15, 0.5, "the broker serves its renewed certificate")
    # and the orders went all the way: notifications has them (the AMQP connections survived every renewal)
    notifications = short_lived["services"]["notifications"]["replicas"][0]["admin_url"]

    def notified() -> int:
        return int(requests.get(f"{notifications}/admin/audit", timeout=10,
                                headers={"Authorization": f"Bearer {short_lived['admin_token']}"}).json()["count"])

    placed = statuses.get(201, 0)
    eventually(lambda: notified() >= placed, 30, 1.0, f"notifications received all {placed} orders")

def test_down_removes_the_ca_and_every_key(short_lived: dict[str, Any]) -> None:
    state = Path(short_lived["state_dir"])
    assert (state / "pki" / "ca.key").exists()
    stop_lab(state)
    assert not (state / "pki").exists()
    assert find(state)["tls"]["mode"] == "on"  # the lab's choice stays for the next `up`
