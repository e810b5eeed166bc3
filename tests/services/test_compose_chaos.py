"""The compose chaos runner's faults against real replicas laid out as in a compose network: two payments
replicas on their own addresses (127.0.0.2 and 127.0.0.3) with the same admin port, found by "DNS" (the name
table the test controls, as Docker's embedded DNS would answer). No Docker engine here, so the restart policy
is the only thing not exercised: the killed replica must have exited 137 on its own. Ports: 22900-22999."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaoslab.chaos import actions, crash, marks, probes
from chaoslab.errors import LabError
from support.procs import PortPool, ServiceProc, sqlite_url, start

pytestmark = pytest.mark.services

ADMIN_TOKEN = "compose-test-admin"
ADDRESSES = ("127.0.0.2", "127.0.0.3")
CHARGE = "/payments.v1.Payments/Charge"


def _start_replica(n: int, address: str, ports: PortPool, admin_port: int, grpc_port: int, tmp: Path) -> ServiceProc:
    proc = start("payments", {
        "HTTP_HOST": address,
        "GRPC_PORT": str(grpc_port),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DATABASE_URL": sqlite_url(tmp / "payments.db"),
        "REPLICA_ID": f"payments-{n}",
    }, ports=ports, admin_port=admin_port, log_dir=tmp / "logs", name=f"payments-{n}", wait=False, public=False)
    proc.admin_url = f"http://{address}:{admin_port}"
    return proc


@pytest.fixture
def compose_payments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[ServiceProc], dict]]:
    ports = PortPool(22900, 22999)
    admin_port, grpc_port = ports.take(), ports.take()
    procs = [_start_replica(n, a, ports, admin_port, grpc_port, tmp_path) for n, a in enumerate(ADDRESSES, 1)]
    try:
        for proc in procs:
            proc.wait_ready(30)
        dns = {"payments": list(ADDRESSES)}
        monkeypatch.setenv("CHAOSLAB_TARGET", "compose")
        monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)
        monkeypatch.setenv("CHAOSLAB_ADMIN_PORT", str(admin_port))
        monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")
        monkeypatch.setattr("chaoslab.lab.compose.dns_addresses", lambda host, port: list(dns.get(host, [])))
        yield procs, dns
    finally:
        for proc in procs:
            proc.stop(grace_s=5)


def _faults(proc: ServiceProc) -> list[dict]:
    resp = requests.get(proc.admin_url + "/admin/faults", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                        timeout=5)
    resp.raise_for_status()
    return resp.json()["faults"]


def test_faults_kill_and_restore_through_the_admin_api(compose_payments: tuple[list[ServiceProc], dict]) -> None:
    procs, dns = compose_payments
    injected = actions.inject_latency("payments", latency_ms=300, route=CHARGE, ttl_s=30)
    assert sorted(r["replica"] for r in injected) == ["payments-1", "payments-2"]
    assert all(len(_faults(p)) == 1 and _faults(p)[0]["route"] == CHARGE for p in procs)

    killed = actions.kill_replica("payments", 2)
    assert [(k["name"], k["pid"]) for k in killed] == [("payments-2", procs[1].pid)]
    procs[1].proc.wait(10)
    assert procs[1].proc.returncode == 137  # ended at once, like SIGKILL: no graceful drain
    assert "stopped" not in procs[1].log_tail(5)  # the graceful path ("stopped") never ran
    assert procs[0].running()

    dns["payments"] = [ADDRESSES[0]]  # the dead container leaves the network until its restart policy acts
    restored = actions.restore_lab(timeout_s=10)
    assert restored["faults_cleared"] == 1 and restored["started"] == []
    assert _faults(procs[0]) == []

    # What the restart policy does: the same container, the same address, a new process. It is back in DNS once
    # it runs; time_to_recover must notice (it asks DNS again on every poll) and count it ready.
    tmp = procs[0].log_path.parent.parent
    replacement = _start_replica(2, ADDRESSES[1], PortPool(22900, 22999), procs[0].admin_port,
                                 int(procs[0].env["GRPC_PORT"]), tmp)
    procs.append(replacement)

    def rejoin() -> None:
        time.sleep(1.0)
        dns["payments"] = list(ADDRESSES)

    threading.Thread(target=rejoin, daemon=True).start()
    recovered = probes.time_to_recover("payments", timeout_s=30, min_ready=2)
    assert recovered["ready"] == 2 and recovered["seconds"] >= 1.0, recovered
    assert replacement.running()


def test_crash_needs_the_admin_token_and_a_sane_delay(compose_payments: tuple[list[ServiceProc], dict]) -> None:
    procs, _ = compose_payments
    url = procs[0].admin_url + "/admin/crash"
    assert requests.post(url, json={}, timeout=5).status_code == 401
    bad = requests.post(url, json={"delay_s": "soon"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    assert bad.status_code == 422 and bad.headers["Content-Type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["field"] == "delay_s"
    time.sleep(0.3)
    assert procs[0].running()  # neither request ended it


def test_a_kill_returns_once_the_replica_is_gone_and_recovery_counts_from_then(
        compose_payments: tuple[list[ServiceProc], dict]) -> None:
    """The crash is answered before the process exits: a kill that returned at the answer let time_to_recover's
    first poll count the doomed replica as ready (0.01 s in the container test). As in the experiment, the recovery
    probe runs right after the kill; the address stays in DNS throughout, as a restarting container's may, and the
    restart policy is played by a thread: 2 s after the process exited, a new one on the same address."""
    procs, _ = compose_payments
    tmp = procs[0].log_path.parent.parent
    restart_after_s = 2.0

    def restart_policy() -> None:
        procs[1].proc.wait(30)
        time.sleep(restart_after_s)
        procs.append(_start_replica(2, ADDRESSES[1], PortPool(22900, 22999), procs[0].admin_port,
                                    int(procs[0].env["GRPC_PORT"]), tmp))

    threading.Thread(target=restart_policy, daemon=True).start()
    (killed,) = actions.kill_replica("payments", 2)
    returned = time.monotonic()
    recovered = probes.time_to_recover("payments", timeout_s=30, min_ready=2)
    since_return = time.monotonic() - returned

    assert killed["gone_after_s"] > 0, killed  # it was still there when the crash was answered
    assert procs[1].proc.wait(5) == 137
    assert marks.last("fault") == killed["at"]
    assert recovered["seconds"] >= restart_after_s, recovered
    # Counted from the moment it was seen gone, just before the kill returned. The measure is rounded to the
    # millisecond and since_return also holds the probe's own return (2.656 against 2.65619 seen): 50 ms of slack.
    assert since_return - 0.05 <= recovered["seconds"] <= since_return + 1.0, (recovered, since_return)


def test_a_replica_that_does_not_go_down_is_reported(compose_payments: tuple[list[ServiceProc], dict]) -> None:
    procs, _ = compose_payments
    replica = {"name": "payments-1", "admin_url": procs[0].admin_url}
    started = time.monotonic()
    with pytest.raises(LabError, match="payments-1 still answers after 0.5 s"):
        crash.wait_gone([replica], timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert procs[0].running()
