"""The shared lab (the `lab` fixture) as a user and the other parts of chaoslab see it. Read-only checks:
the lifecycle tests (scale, kill, down) run on labs of their own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from chaoslab.clients.prometheus import Prometheus
from chaoslab.lab.ports import SERVICES, PortPlan
from chaoslab.lab.procs import lab_processes
from chaoslab.lab.spec import load_spec
from services import contract
from support.lab import rabbitmqctl, registry
from support.waiting import eventually

pytestmark = pytest.mark.lab

REGISTRY_KEYS = {"state_dir", "base_port", "topology", "admin_token", "admin_account", "gateway_url", "network", "tls",
                 "services", "broker", "prometheus_url", "alertmanager_url", "webhook_url", "processes"}
INFRASTRUCTURE = {"rabbitmq", "certs", "prometheus", "alertmanager", "webhook"}  # certs: mutual TLS is on by default



def test_status_json_is_the_registry_of_the_contract(lab: dict[str, Any]) -> None:
    reg = registry(Path(lab["state_dir"]))
    assert reg.pop("lease") is None  # status adds who holds the lab's lease (nobody here)
    assert set(reg) == REGISTRY_KEYS
    base = reg["base_port"]
    plan = PortPlan(base)
    assert reg["gateway_url"] == f"http://127.0.0.1:{base}"
    assert (reg["prometheus_url"], reg["alertmanager_url"], reg["webhook_url"]) == (
        f"http://127.0.0.1:{base + 20}", f"http://127.0.0.1:{base + 21}", f"http://127.0.0.1:{base + 22}")
    assert reg["network"] == {"mode": "loopback"} and reg["topology"] == "microservices"
    assert reg["admin_account"]["email"] and len(reg["admin_account"]["password"]) >= 10
    state = Path(lab["state_dir"]) / "pki"
    assert reg["tls"] == {"mode": "on", "trust_domain": "chaoslab", "cert_ttl_s": 3600,
                          "certs_url": f"http://127.0.0.1:{base + 24}",
                          "operator": {"cert_file": str(state / "chaoslab" / "cert.pem"),
                                       "key_file": str(state / "chaoslab" / "key.pem"),
                                       "ca_file": str(state / "ca.pem")}}
    assert reg["broker"] == {"address": "127.0.0.1", "amqp_url": f"amqps://127.0.0.1:{base + 10}/?auth=external",
                             "metrics_url": f"http://127.0.0.1:{base + 12}/metrics",
                             "node": f"chaoslab-{base}@localhost", "state": "RUNNING"}
    assert list(reg["services"]) == list(SERVICES)
    assert reg["services"]["payments"]["url"] is None
    assert reg["services"]["payments"]["grpc_addr"] == f"127.0.0.1:{base + 4}"
    assert reg["services"]["orders"]["url"] == f"https://127.0.0.1:{base + 3}"  # mutual TLS inside the shop
    wanted = load_spec(lab["state_dir"]).replicas  # the session lab runs two payments replicas
    for service in SERVICES:
        replicas = reg["services"][service]["replicas"]
        assert len(replicas) == wanted[service] >= 1
        for n, replica in enumerate(replicas, start=1):
            assert set(replica) == {"name", "address", "admin_url", "pid", "state", "ready", "program"}
            assert replica["program"] == replica["name"]  # microservices: each replica its own program
            assert replica["address"] == "127.0.0.1"
            assert replica["name"] == f"{service}-{n}"
            assert replica["admin_url"] == f"http://127.0.0.1:{plan.admin_port(service, n)}"
            assert replica["state"] == "RUNNING" and replica["ready"] is True and replica["pid"] > 0
    processes = {p["name"]: p for p in reg["processes"]}
    assert set(processes) >= INFRASTRUCTURE
    assert all(p["state"] == "RUNNING" and p["pid"] > 0 and set(p) == {"name", "state", "pid"}
               for p in processes.values())
    on_disk = json.loads((Path(lab["state_dir"]) / "registry.json").read_text())
    assert set(on_disk) == REGISTRY_KEYS and on_disk["admin_token"] == reg["admin_token"]
    lab_json = json.loads((Path(lab["state_dir"]) / "lab.json").read_text())
    assert lab_json["admin_token"] == reg["admin_token"] and lab_json["base_port"] == base
    assert lab_json["admin_password"] == reg["admin_account"]["password"]


def test_every_replica_has_its_admin_token_and_ports(lab: dict[str, Any]) -> None:
    for service in SERVICES:
        admin = lab["services"][service]["replicas"][0]["admin_url"]
        assert requests.get(f"{admin}/health/ready", timeout=10).status_code == 200
        assert requests.get(f"{admin}/admin/faults", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {lab['admin_token']}"}
        assert requests.get(f"{admin}/admin/faults", headers=auth, timeout=10).status_code == 200
        log = Path(lab["state_dir"]) / "logs" / f"{service}-1.log"
        first = json.loads(log.read_text().splitlines()[0])
        assert first["service"] == service and first["replica"] == f"{service}-1"


def test_prometheus_scrapes_every_replica_rabbitmq_and_itself(lab: dict[str, Any]) -> None:
    prometheus = Prometheus(lab["prometheus_url"])
    expected = {(s, f"{s}-1") for s in SERVICES}

    def all_up() -> list[dict[str, Any]] | None:
        """every replica, RabbitMQ, Alertmanager and Prometheus are scraped and up"""
        targets = prometheus.targets()
        healthy = {(t["labels"]["job"], t["labels"].get("replica")) for t in targets if t["health"] == "up"}
        needed = expected | {("rabbitmq", None), ("alertmanager", None), ("prometheus", None)}
        return targets if needed <= healthy else None

    targets = eventually(all_up)
    for target in targets:
        labels = target["labels"]
        if "replica" in labels:
            assert labels["job"] == labels["service"] == labels["replica"].rsplit("-", 1)[0]
    config = prometheus.config()
    assert "scrape_interval: 2s" in config and "evaluation_interval: 2s" in config


def test_rabbitmq_shows_each_queue_in_prometheus(lab: dict[str, Any]) -> None:
    prometheus = Prometheus(lab["prometheus_url"])

    def queues() -> bool:
        """per-queue depth of the notifications queues is in Prometheus"""
        samples = prometheus.query("rabbitmq_queue_messages_ready")
        return {s.labels.get("queue", "") for s in samples} >= {contract.ORDER_EVENTS_QUEUE}

    eventually(queues)
    listed = rabbitmqctl(load_spec(lab["state_dir"]), "list_queues", "name", "messages")
    assert listed.returncode == 0, listed.stderr
    assert contract.ORDER_EVENTS_QUEUE in listed.stdout


def test_an_alert_reaches_the_webhook_and_its_file(lab: dict[str, Any]) -> None:
    name = f"ChaoslabLabTest{uuid.uuid4().hex[:8]}"
    since = time.time() - 1
    alert = [{"labels": {"alertname": name, "service": "orders", "severity": "ticket"},
              "annotations": {"summary": "a test alert of tests/lab"}}]
    assert requests.post(f"{lab['alertmanager_url']}/api/v2/alerts", json=alert, timeout=10).status_code == 200

    def delivered() -> list[dict[str, Any]]:
        """the webhook receiver got the alert from Alertmanager"""
        answer = requests.get(f"{lab['webhook_url']}/notifications", params={"since": since}, timeout=10).json()
        return [n for n in answer["notifications"]
                if any(a["labels"].get("alertname") == name for a in n.get("alerts", []))]

    [first, *_] = eventually(delivered, timeout_s=120)
    assert first["status"] == "firing" and first["received_at"] >= since
    recorded = (Path(lab["state_dir"]) / "alerts" / "notifications.jsonl").read_text()
    assert name in recorded


def test_the_system_broker_and_database_are_not_the_labs(lab: dict[str, Any]) -> None:
    """The lab's node listens on its own ports only; whatever listens on 5672 or 5432 is not the lab's."""
    ours = {p.pid for p in lab_processes(Path(lab["state_dir"]))}
    listeners: dict[int, set[int | None]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN:
            listeners.setdefault(conn.laddr.port, set()).add(conn.pid)
    assert not listeners.get(5672, set()) & ours and not listeners.get(5432, set()) & ours
    base = lab["base_port"]
    beam = listeners[base + 10]
    assert beam <= ours and listeners[base + 12] == beam and listeners[base + 11] == beam


def test_status_table_logs_and_a_second_up(lab: dict[str, Any], chaoslab_cli: Callable[..., Any]) -> None:
    state = lab["state_dir"]
    shown = chaoslab_cli("status", "--state-dir", state)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for name in ("rabbitmq", "certs", "prometheus", "alertmanager", "webhook", *(f"{s}-1" for s in SERVICES)):
        assert name in shown.stdout
    assert "alerts" in shown.stdout
    service = SERVICES[0]
    logs = chaoslab_cli("logs", service, "-n", "3", "--state-dir", state)
    assert logs.returncode == 0 and 1 <= len(logs.stdout.splitlines()) <= 3
    assert all(json.loads(line)["service"] == service for line in logs.stdout.splitlines())
    before = {p["name"]: p["pid"] for p in registry(Path(state))["processes"]}
    again = chaoslab_cli("up", "--state-dir", state, "--base-port", str(lab["base_port"] + 1000))
    assert again.returncode == 1
    assert "a lab already runs in" in again.stderr and "chaoslab status" in again.stderr
    assert "Traceback" not in again.stderr
    assert {p["name"]: p["pid"] for p in registry(Path(state))["processes"]} == before
