"""A lab of the module's own (beside the shared one): scaling, a SIGKILLed replica, two labs side by side,
and `down`. The tests run in file order; the last one stops the lab."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from chaoslab.clients.prometheus import Prometheus
from chaoslab.lab.ports import PortPlan
from chaoslab.lab.procs import alive, lab_processes
from support.lab import assert_no_lab_process, registry, replica_args, run_chaoslab, start_lab
from support.waiting import eventually as _eventually

pytestmark = pytest.mark.lab



def eventually(check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    return _eventually(check, timeout_s)


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory,
            lab_ports: tuple[Callable[[], int], Callable[[int], None]]) -> Iterator[dict[str, Any]]:
    reserve, release = lab_ports
    state = tmp_path_factory.mktemp("own-lab") / "state"
    base = reserve()
    try:
        yield start_lab(state, base, *replica_args())
    finally:
        run_chaoslab("down", "--state-dir", state)  # idempotent: the last test already stopped it
        release(base)


def pids(reg: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["pid"] for p in reg["processes"]}


def scraped_replicas(reg: dict[str, Any]) -> set[str]:
    targets = Prometheus(reg["prometheus_url"]).targets()
    return {t["labels"]["replica"] for t in targets if "replica" in t["labels"] and t["health"] == "up"}


def test_two_labs_run_side_by_side(lab: dict[str, Any], own_lab: dict[str, Any]) -> None:
    assert lab["base_port"] != own_lab["base_port"] and lab["state_dir"] != own_lab["state_dir"]
    first, second = registry(Path(lab["state_dir"])), registry(Path(own_lab["state_dir"]))
    for reg in (first, second):
        assert reg["broker"]["state"] == "RUNNING"
        assert all(r["ready"] for s in reg["services"].values() for r in s["replicas"])
    assert first["broker"]["node"] != second["broker"]["node"]
    assert not set(pids(first).values()) & set(pids(second).values())
    # each Prometheus scrapes its own replicas only
    # (Prometheus starts last in `up` and hands discovered targets to its scrapers ~5 s later: wait for them.)
    for reg in (first, second):
        low, high = reg["base_port"], reg["base_port"] + 300

        def scraped_ports(reg: dict[str, Any] = reg) -> list[int]:
            targets = Prometheus(reg["prometheus_url"]).targets()
            return [int(t["labels"]["instance"].rsplit(":", 1)[1]) for t in targets]

        ports = eventually(scraped_ports)
        assert all(low <= p < high for p in ports), ports
    # both shops answer through their own gateways
    for reg in (first, second):
        jwks = requests.get(f"{reg['gateway_url']}/api/auth/.well-known/jwks.json", timeout=10)
        assert jwks.status_code == 200 and jwks.json()["keys"]


def test_scale_adds_and_removes_replicas_and_nothing_else_restarts(own_lab: dict[str, Any]) -> None:
    state = Path(own_lab["state_dir"])
    before = pids(registry(state))
    grown = run_chaoslab("scale", "orders=3", "payments=2", "--state-dir", state)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "orders-2" in grown.stdout and "payments-2" in grown.stdout
    reg = registry(state)
    now = pids(reg)
    assert {n: now[n] for n in before} == before  # nobody else restarted
    assert set(now) - set(before) == {"orders-2", "orders-3", "payments-2"}
    for service, count in (("orders", 3), ("payments", 2)):
        replicas = reg["services"][service]["replicas"]
        assert [r["name"] for r in replicas] == [f"{service}-{n}" for n in range(1, count + 1)]
        assert all(r["state"] == "RUNNING" and r["ready"] for r in replicas)
    plan = PortPlan(own_lab["base_port"])
    assert reg["services"]["orders"]["replicas"][2]["admin_url"].endswith(f":{plan.admin_port('orders', 3)}")
    targets = json.loads((state / "prometheus" / "targets" / "orders.json").read_text())
    assert [t["labels"]["replica"] for t in targets] == ["orders-1", "orders-2", "orders-3"]
    eventually(lambda: {"orders-2", "orders-3", "payments-2"} <= scraped_replicas(reg))

    shrunk = run_chaoslab("scale", "orders=1", "payments=1", "--state-dir", state)
    assert shrunk.returncode == 0, shrunk.stdout + shrunk.stderr
    reg = registry(state)
    assert pids(reg) == before
    for gone in ("orders-2", "orders-3", "payments-2"):
        assert not alive(now[gone])
    assert json.loads((state / "lab.json").read_text())["replicas"]["orders"] == 1
    eventually(lambda: not {"orders-2", "orders-3", "payments-2"} & scraped_replicas(reg))

    bad = run_chaoslab("scale", "orders=99", "--state-dir", state)
    assert bad.returncode == 1 and "0..20" in bad.stderr and "Traceback" not in bad.stderr


def test_a_sigkilled_replica_comes_back_by_itself(own_lab: dict[str, Any]) -> None:
    state = Path(own_lab["state_dir"])
    before = pids(registry(state))
    victim = before["orders-1"]
    os.kill(victim, signal.SIGKILL)

    def back() -> dict[str, Any] | None:
        """orders-1 runs again under a new pid and is ready"""
        [replica] = registry(state)["services"]["orders"]["replicas"]
        return replica if replica["pid"] not in (0, victim) and replica["ready"] else None

    replica = eventually(back)
    after = pids(registry(state))
    assert {n: p for n, p in after.items() if n != "orders-1"} == {n: p for n, p in before.items() if n != "orders-1"}
    assert after["orders-1"] == replica["pid"]


def test_down_leaves_no_process(own_lab: dict[str, Any]) -> None:
    state = Path(own_lab["state_dir"])
    ours = lab_processes(state)
    assert any("beam.smp" in p.name() for p in ours)  # RabbitMQ's VM carries the marker too
    system_broker = [c.pid for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == 5672]
    done = run_chaoslab("down", "--state-dir", state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no process of the lab is left" in done.stdout
    assert_no_lab_process(state, own_lab["base_port"])
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ours)
    assert all(alive(pid) for pid in system_broker if pid)  # the system RabbitMQ runs on
    reg = registry(state)
    assert reg["broker"]["state"] == "STOPPED" and reg["processes"] == []
    again = run_chaoslab("down", "--state-dir", state)
    assert again.returncode == 0 and "no lab runs" in again.stdout
    status = run_chaoslab("status", "--state-dir", state)
    assert status.returncode == 1 and "no lab runs" in status.stdout
