"""The modular monolith (services/monolith) as a real process on a throwaway RabbitMQ node: the six modules in one
process answer the public API as the services do, reach each other in process (no module port but the gateway's,
every upstream call labelled `inprocess`), keep their events on RabbitMQ, and a fault injected into one module
stays in that module. Ports: 22000-22899 (this suite's), broker from support.rabbit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from chaoslab.clients.shop import CATALOGUE, ME, ShopClient
from services.contract import SERVICE_NAMES
from support.procs import PortPool, ServiceProc, start
from support.rabbit import RabbitNode
from support.waiting import eventually

pytestmark = pytest.mark.services
ADMIN_TOKEN = "monolith-test-admin"


@pytest.fixture(scope="module")
def monolith(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProc, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("monolith")
    rabbit = RabbitNode(tmp / "rabbit")
    rabbit.start()
    ports = PortPool(22000, 22899)
    admin = {name: ports.take() for name in SERVICE_NAMES}
    env = {"AMQP_URL": rabbit.amqp_url, "ADMIN_TOKEN": ADMIN_TOKEN, "DATA_DIR": str(tmp / "data"),
           "RATE_LIMIT_RPS": "0", "PROVIDER_LATENCY_MS": "20",
           **{f"{name.upper()}_ADMIN_PORT": str(port) for name, port in admin.items()}}
    (tmp / "data").mkdir()
    proc = start("monolith", env, ports=ports, admin_port=admin["gateway"], log_dir=tmp / "logs", timeout=60)
    try:
        yield proc, {name: f"http://127.0.0.1:{port}" for name, port in admin.items()}
    finally:
        proc.stop()
        rabbit.close()


def _samples(admin_url: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = requests.get(admin_url + "/metrics", timeout=5).text
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def _admin(method: str, url: str, body: Any = None) -> Any:
    resp = requests.request(method, url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def test_one_process_one_public_port_and_the_journey_end_to_end(monolith: tuple[ServiceProc, dict[str, str]]) -> None:
    proc, admin = monolith
    listening = {c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN}
    admin_ports = {int(url.rsplit(":", 1)[1]) for url in admin.values()}
    # the gateway's public port and one admin port per module: no other module, payments' gRPC included, listens
    assert listening == {proc.http_port, *admin_ports}, listening

    shop = ShopClient(proc.url)
    assert shop.request("GET", CATALOGUE).status_code == 200
    customer = shop.sign_up()
    me = customer.get(ME)
    assert me.status_code == 200 and me.json()["email"] == customer.email
    placed = customer.place_order()
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "paid" or order.get("payment_id"), order
    assert customer.get(f"/api/orders/{order['id']}").json()["id"] == order["id"]
    # the order's event went through the outbox and RabbitMQ to the notifications module
    eventually(lambda: any(n.get("order_id") == order["id"] for n in customer.notifications()), 20, 0.2,
               "the order's notification")

    # every call between modules went in process, and each module's admin port shows its own metrics only, as a
    # service's would: the gateway's calls to auth and orders, orders' to users and payments
    def calls(module: str) -> set[tuple[str, str]]:
        return {(labels["upstream"], labels["protocol"]) for labels, value in
                _samples(admin[module], "client_request_duration_seconds_count") if value > 0}

    assert calls("gateway") == {("auth", "inprocess"), ("orders", "inprocess"), ("users", "inprocess"),
                                ("notifications", "inprocess")}, calls("gateway")
    assert calls("orders") == {("users", "inprocess"), ("payments", "inprocess")}, calls("orders")
    assert calls("payments") == set()
    assert not any("service" in labels for labels, _ in _samples(admin["orders"], "orders_placed_total"))
    assert sum(v for _, v in _samples(admin["orders"], "orders_placed_total")) >= 1
    assert _samples(admin["payments"], "orders_placed_total") == []
    # payments' own server metrics saw the charge (the in-process call went through its interceptors)
    assert any(labels.get("code") == "OK" and value > 0
               for labels, value in _samples(admin["payments"], "grpc_server_request_duration_seconds_count"))
    # the process' own metrics are served once, by the gateway module's port
    assert _samples(admin["gateway"], "process_cpu_seconds_total")
    assert not _samples(admin["payments"], "process_cpu_seconds_total")
    charges = _admin("GET", admin["payments"] + "/admin/audit")
    assert charges, charges


def test_a_fault_in_one_module_stays_in_that_module(monolith: tuple[ServiceProc, dict[str, str]]) -> None:
    proc, admin = monolith
    customer = ShopClient(proc.url).sign_up()
    _admin("POST", admin["payments"] + "/admin/faults", {"kind": "error", "status": 503, "ttl_s": 30})
    try:
        assert _admin("GET", admin["orders"] + "/admin/faults")["faults"] == []  # the fault is payments' alone
        failed = customer.place_order()
        # payments answers UNAVAILABLE in process; orders maps it as it maps the gRPC status (503 problem)
        assert failed.status_code == 503, failed.text
        assert failed.headers["Content-Type"].startswith("application/problem+json")
        assert "payments" in failed.json()["detail"]
        # modules that do not need payments are untouched
        assert customer.get(ME).status_code == 200
        assert customer.get("/api/orders").status_code == 200
    finally:
        _admin("DELETE", admin["payments"] + "/admin/faults")
    assert customer.place_order().status_code == 201
