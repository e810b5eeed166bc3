"""`chaoslab up --topology monolith` for real: two replicas of one process holding the six modules, under the lab's
supervisord, Prometheus and RabbitMQ. Prometheus sees every module as it sees a service; killing "payments" kills
the monolith replica that holds it (everything in it), the experiment's verdict still judges the shop, no order is
lost, scaling a module scales the monolith, and `down` leaves nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chaoslab.clients.prometheus import Prometheus
from chaoslab.clients.shop import ShopClient
from chaoslab.lab.audit import data_audit
from services.contract import SERVICE_NAMES
from support.lab import registry as lab_registry
from support.lab import start_lab, stop_lab
from support.waiting import eventually

pytestmark = [pytest.mark.lab]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_a_monolith_lab_serves_is_observed_as_modules_and_survives_a_kill(
        chaoslab_cli: Cli, free_base_port: Callable[[], int], tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    refused = chaoslab_cli("up", "--topology", "monolith", "--tls", "on", "--state-dir", state_dir,
                           "--base-port", str(free_base_port()))
    assert refused.returncode != 0 and "runs --tls off" in refused.stdout + refused.stderr
    registry = start_lab(state_dir, free_base_port(), "--topology", "monolith", "--replicas", "monolith=2")
    try:
        assert registry["topology"] == "monolith" and registry["tls"]["mode"] == "off"
        programs = {p["name"] for p in registry["processes"]}
        assert {"monolith-1", "monolith-2"} <= programs and not programs & {"payments-1", "gateway-1"}
        for n in (1, 2):  # every module of replica n is the one process monolith-n
            pids = {registry["services"][s]["replicas"][n - 1]["pid"] for s in SERVICE_NAMES}
            assert len(pids) == 1 and pids != {0}, pids
            assert {registry["services"][s]["replicas"][n - 1]["program"] for s in SERVICE_NAMES} == {f"monolith-{n}"}
        assert registry["services"]["payments"]["grpc_addr"] is None  # reached in process only

        prometheus = Prometheus(registry["prometheus_url"])
        # each module a target of its own, labelled as its service's, up
        eventually(lambda: sorted(r.labels["replica"] for r in prometheus.query('up{service!=""} == 1')
                                  if r.labels.get("service") in SERVICE_NAMES) ==
                   sorted(f"{s}-{n}" for s in SERVICE_NAMES for n in (1, 2)), 60, 1, "every module's target up")
        customer = ShopClient(registry["gateway_url"]).sign_up()
        for _ in range(4):
            assert customer.place_order().status_code == 201
        # orders' metrics come from the orders module only, with the in-process calls to payments
        eventually(lambda: prometheus.query('sum(client_request_duration_seconds_count{service="orders", '
                                            'upstream="payments", protocol="inprocess"}) > 0'), 40, 1,
                   "orders' in-process calls to payments in Prometheus")
        assert not prometheus.query('client_request_duration_seconds_count{service="payments"}')

        done = chaoslab_cli("chaos", "run", "chaos/kill-payments-replica.json", "--var", "min_replicas=2",
                            "--state-dir", state_dir, "--runs-dir", tmp_path / "runs", timeout=300)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
        killed = next(r for r in journal["run"] if r["activity"]["name"] == "kill-one-payments-replica")["output"]
        assert killed[0]["name"] in ("monolith-1", "monolith-2"), killed  # the whole replica, not a module
        after = lab_registry(state_dir)
        again = {r["pid"] for s in SERVICE_NAMES for r in after["services"][s]["replicas"]
                 if r["program"] == killed[0]["name"]}
        assert len(again) == 1 and killed[0]["pid"] not in again, (killed, again)  # restarted as one process

        audit = data_audit(after, settle_s=5)
        assert audit["ok"], audit

        scaled = chaoslab_cli("scale", "payments=3", "--state-dir", state_dir, timeout=180)
        assert scaled.returncode == 0, f"{scaled.stdout}\n{scaled.stderr}"
        spec = json.loads((state_dir / "lab.json").read_text())
        assert set(spec["replicas"].values()) == {3}  # a module scales only with the whole monolith
    finally:
        stop_lab(state_dir)
