"""The faults below the application, for real: an isolated lab of this module's own (network namespaces, the
lab's bridge and chains, cgroups, data disks, libfaketime), every experiment of chaos/ tagged `isolated` run with
`chaoslab chaos run`'s runner under the built-in order stream (shortened by configuration) and judged from its
journal; one that must fail; the TTL reaper ending the faults of a process that died; and `chaoslab down` leaving
no namespace, link, bridge, rule, chain, cgroup, mount or worker behind after the injecting process was killed.

Root only (CI runs as root): elsewhere skipped with the reason; with CI=true a missing privilege or tool fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaoslab.chaos import probes
from chaoslab.chaos.experiments import resolve
from chaoslab.chaos.runner import RunOptions, RunResult, run
from chaoslab.kernel import inventory, store
from chaoslab.lab import disks, iptables
from chaoslab.lab.network import NetPlan, leftovers
from chaoslab.lab.preflight import isolated_requirements
from chaoslab.lab.spec import load_spec
from support.lab import (
    LabStartFailed,
    assert_no_lab_process,
    release_base_port,
    replica_args,
    reserve_base_port,
    run_chaoslab,
    start_lab,
)
from support.prereqs import skip_or_fail_in_ci

pytestmark = [pytest.mark.netns, pytest.mark.lab, pytest.mark.slow]
TEST_EXPERIMENTS = Path(__file__).parent / "experiments"
LOAD_RATE = 2.0  # orders/s of the background order stream: enough to see a fault, light on a busy 2-core machine
LAG_RATE = 5.0  # the bandwidth experiment needs more messages than its capped link carries
WARMUP_S = 6.0

# (experiment, vars, bounds on measurements, orders/s of background load): shortened by configuration, not by
# editing the experiments. The load is light: at 5/s on a 2-core machine saturated by another suite, orders alone
# took 2.5-5 s and the gateway's 3 s timeout failed requests whatever the fault.
BELOW = [
    ("payments-blackhole", {}, {"breaker_open": 30, "time_to_detect": 30}, LOAD_RATE),
    ("gateway-orders-loss", {"orders_to_place": 15}, {}, LOAD_RATE),
    ("broker-partition", {"partition_s": 10}, {"time_to_unready": 25, "time_to_recover": 60}, LOAD_RATE),
    ("notifications-bandwidth", {}, {"time_to_detect": 120}, LAG_RATE),
    ("orders-disk-full", {}, {"time_to_detect": 90, "time_to_refuse": 60}, LOAD_RATE),
    ("notifications-oom", {}, {"time_to_restart": 30, "time_to_detect": 40}, LOAD_RATE),
    ("gateway-clock-skew", {}, {"time_to_detect": 30}, LOAD_RATE),
]


def require_isolation() -> None:
    missing = isolated_requirements()
    if missing:
        skip_or_fail_in_ci("the isolated lab cannot run here: " + "; ".join(str(m) for m in missing))


def kernel_state(state_dir: Path, base: int) -> dict[str, Any]:
    """Everything of the lab that the kernel or the process table could still hold, by the lab's names."""
    plan = NetPlan(base)
    found: dict[str, Any] = dict(leftovers(plan))
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/chaoslab-{base}")]
    if cgroups:
        found["cgroups"] = cgroups
    mounts = disks.mounts_under(Path(state_dir) / "data")
    if mounts:
        found["mounts"] = [str(m) for m in mounts]
    rules = [line for t in iptables.TABLES for line in iptables.save(t).splitlines() if plan.chain in line]
    if rules:
        found["rules"] = rules
    queues = Path("/proc/net/netfilter/nfnetlink_queue")
    if queues.exists():
        bound = [line for line in queues.read_text().splitlines()
                 if base <= int(line.split()[0]) < base + 300]
        if bound:
            found["nfqueue"] = bound
    return found


@pytest.fixture(scope="module")
def isolated_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_isolation()
    state_dir = tmp_path_factory.mktemp("isolated-lab") / "state"
    base = reserve_base_port()
    try:
        try:
            registry = start_lab(state_dir, base, *replica_args("payments=2"), "--network", "isolated")
        except LabStartFailed:
            release_base_port(base)
            base = reserve_base_port()
            registry = start_lab(state_dir, base, *replica_args("payments=2"), "--network", "isolated")
        yield registry
        done = run_chaoslab("down", "--state-dir", state_dir)
        assert done.returncode == 0, done.stderr
        assert_no_lab_process(state_dir)
        assert kernel_state(state_dir, base) == {}
    finally:
        release_base_port(base)


@pytest.fixture
def config(isolated_lab: dict[str, Any]) -> dict[str, str]:
    return {"chaoslab_state_dir": isolated_lab["state_dir"]}


def run_experiment(path: Path, lab: dict[str, Any], tmp_path: Path, variables: dict[str, Any],
                   rate: float = LOAD_RATE) -> RunResult:
    # A calm start: the hypothesis reads the gateway's last 10 s, which must not hold the previous run's errors.
    config = {"chaoslab_state_dir": lab["state_dir"]}
    probes.wait_for_error_ratio("gateway", max_ratio=0.01, window="10s", timeout_s=90, configuration=config)
    return run(RunOptions(path, Path(lab["state_dir"]), tmp_path / "runs", "orders", rate, WARMUP_S, variables))


def explain(result: RunResult) -> str:
    steps = [f"{s.phase} {s.name}: {s.status} {s.detail}" for s in result.verdict.steps if not s.ok]
    return f"{result.run_dir}: {result.verdict.failures} {steps}"


def assert_nothing_held(config: dict[str, str]) -> None:
    spec = load_spec(config["chaoslab_state_dir"])
    held = inventory.holdings(spec)
    assert not inventory.active(held), held
    assert probes.lab_ready(configuration=config)


def test_the_isolated_lab_gives_every_replica_an_address_and_balances_each_service(
        isolated_lab: dict[str, Any]) -> None:
    network = isolated_lab["network"]
    assert network["mode"] == "isolated" and network["subnet"].startswith("10.")
    addresses = [r["address"] for s in isolated_lab["services"].values() for r in s["replicas"]]
    assert len(set(addresses)) == len(addresses) == 7 and all(a.startswith(network["subnet"][:-4]) for a in addresses)
    assert isolated_lab["gateway_url"].startswith(f"http://{isolated_lab['services']['gateway']['address']}:")
    # the payments service address balances over both replicas, as kube-proxy's statistic rules do
    view = json.loads(subprocess.run(["curl", "-s", f"{network['endpoints_url']}/endpoints"], capture_output=True,
                                     text=True, check=True).stdout)
    assert view["services"]["payments"]["ready"] == ["payments-1", "payments-2"]
    # Prometheus scrapes every replica at its own address
    from chaoslab.clients.prometheus import Prometheus

    prometheus = Prometheus(isolated_lab["prometheus_url"])
    wanted = sorted(r["address"] for r in isolated_lab["services"]["payments"]["replicas"])
    deadline = time.monotonic() + 20  # Prometheus starts last: its first scrapes of every target
    while True:
        scraped = sorted(t.labels["instance"].split(":")[0] for t in prometheus.query('up{job="payments"} == 1'))
        if scraped == wanted or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert scraped == wanted


def test_a_killed_replica_leaves_the_service_address_until_it_is_ready_again(
        isolated_lab: dict[str, Any], config: dict[str, str]) -> None:
    from chaoslab.chaos import actions

    url = f"{isolated_lab['network']['endpoints_url']}/endpoints"

    def ready() -> list[str]:
        out = subprocess.run(["curl", "-s", url], capture_output=True, text=True, check=True).stdout
        return list(json.loads(out)["services"]["payments"]["ready"])

    actions.pause_replica("payments", 2, configuration=config)
    try:
        deadline = time.monotonic() + 10
        while "payments-2" in ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready() == ["payments-1"]
        chains = iptables.save("nat")
        assert f"DNAT --to-destination {isolated_lab['services']['payments']['replicas'][1]['address']}" not in chains
        probes.place_orders(count=3, expect_status=201, configuration=config)  # served by payments-1 alone
    finally:
        actions.resume_replicas(configuration=config)
    deadline = time.monotonic() + 15
    while ready() != ["payments-1", "payments-2"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready() == ["payments-1", "payments-2"]


@pytest.mark.parametrize(("name", "variables", "bounds", "rate"), BELOW, ids=[n for n, *_ in BELOW])
def test_experiment_below_the_application_passes_under_load(name: str, variables: dict[str, Any],
                                                          bounds: dict[str, float], rate: float,
                                                          isolated_lab: dict[str, Any], config: dict[str, str],
                                                          tmp_path: Path) -> None:
    result = run_experiment(resolve(name), isolated_lab, tmp_path, variables, rate)
    assert result.verdict.passed, explain(result)
    assert result.leftovers == {}
    measured = {m["measure"]: m["seconds"] for m in result.verdict.measurements}
    for measure, bound in bounds.items():
        assert measured[measure] <= bound, (measure, measured)
    journal = json.loads((result.run_dir / "journal.json").read_text())
    injected = [r for r in journal["run"] if r["activity"]["type"] == "action"
                and isinstance(r.get("output"), dict) and "attestation" in r["output"]]
    assert injected, "no attested fault in the run"
    assert_nothing_held(config)


def test_a_fault_with_bounds_that_cannot_hold_fails_and_is_rolled_back(
        isolated_lab: dict[str, Any], config: dict[str, str], tmp_path: Path) -> None:
    result = run_experiment(TEST_EXPERIMENTS / "kernel-impossible-bound.json", isolated_lab, tmp_path, {})
    assert not result.verdict.passed
    assert any("orders-answer-within-an-impossible-bound" in f for f in result.verdict.failures), explain(result)
    journal = json.loads((result.run_dir / "journal.json").read_text())
    attested = journal["run"][0]["output"]["attestation"]
    assert attested["connect_s_median"] >= 0.24  # the delay was real: the failure is the bound's, not the fault's
    assert result.leftovers == {}
    assert_nothing_held(config)


def test_reject_and_cpu_throttling_are_attested_listed_and_cleared(isolated_lab: dict[str, Any],
                                                                   config: dict[str, str]) -> None:
    """The two faults no experiment of chaos/ uses: a reset is refused at once (not hung), a CPU quota throttles
    periods for real; `chaoslab faults` lists both with what the kernel holds for them, `faults --clear` ends them."""
    from chaoslab.chaos import actions

    state = isolated_lab["state_dir"]
    rejected = actions.reject_connections("payments", source="orders", ttl_s=120, configuration=config)
    assert rejected["attestation"]["outcome"] == "refused" and rejected["attestation"]["seconds"] < 1.0, rejected
    stop = threading.Event()

    def busy() -> None:  # requests to throttle: a quota shows only when the replica wants more CPU than it has
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                requests.get(isolated_lab["gateway_url"] + "/api/openapi.json", timeout=5)

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        throttled = actions.throttle_cpu("gateway", percent=2, ttl_s=120, configuration=config)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert throttled["attestation"]["nr_throttled"] > 0, throttled
    listed = run_chaoslab("faults", "--json", "--state-dir", state)
    assert listed.returncode == 0, listed.stderr
    kernel = json.loads(listed.stdout)["kernel"]
    assert sorted(f["kind"] for f in kernel["faults"]) == ["cpu", "reject"], kernel["faults"]
    assert kernel["rules"] and kernel["cgroups"], kernel
    table = run_chaoslab("faults", "--state-dir", state)
    assert table.returncode == 0 and "fault reject" in table.stdout and "fault cpu" in table.stdout, table.stdout
    cleared = run_chaoslab("faults", "--clear", "--state-dir", state)
    assert cleared.returncode == 0 and "ended 2 kernel fault(s)" in cleared.stdout, cleared.stdout + cleared.stderr
    assert_nothing_held(config)


def _inject_and_die(state_dir: str, script: str) -> None:
    """A process that injects faults and is SIGKILLed: nothing of it runs a rollback."""
    code = (f"import os, signal\nfrom chaoslab.chaos import actions\ncfg = {{'chaoslab_state_dir': {state_dir!r}}}\n"
            f"{script}\nos.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def test_the_reaper_ends_a_dead_injectors_faults_when_their_ttl_runs_out(
        isolated_lab: dict[str, Any], config: dict[str, str]) -> None:
    state = isolated_lab["state_dir"]
    _inject_and_die(state, "actions.delay_packets('payments', 80, source='orders', ttl_s=4, configuration=cfg)\n"
                           "actions.skew_clock('gateway', offset_s=120, ttl_s=4, configuration=cfg)")
    spec = load_spec(state)
    held = inventory.holdings(spec)
    assert len(held["faults"]) == 2 and held["rules"] and held["workers"] and held["clocks"]
    started = time.monotonic()
    while store.records(spec) and time.monotonic() - started < 15:
        time.sleep(0.5)
    assert store.records(spec) == [], "the endpoints controller did not end the expired faults"
    assert_nothing_held(config)
    probes.wait_for_clock_offset("gateway", offset_s=0, timeout_s=5, configuration=config)  # libfaketime rereads


def test_down_leaves_nothing_after_the_injecting_process_was_killed(tmp_path: Path) -> None:
    require_isolation()
    state_dir = tmp_path / "state"
    base = reserve_base_port()
    try:
        start_lab(state_dir, base, "--replicas", "gateway=1,auth=1,users=1,orders=1,payments=1,notifications=1",
                  "--network", "isolated")
        _inject_and_die(str(state_dir), "\n".join([
            "actions.delay_packets('payments', 50, source='orders', ttl_s=600, configuration=cfg)",
            "actions.partition('users', ttl_s=600, configuration=cfg)",
            "actions.limit_bandwidth('notifications', 64, ttl_s=600, configuration=cfg)",
            "actions.limit_memory('orders', headroom_mb=64, ttl_s=600, configuration=cfg)",
            "actions.fill_disk('payments', ttl_s=600, configuration=cfg)",
            "actions.stress_host(cpu_workers=1, cpu_load=10, ttl_s=600, configuration=cfg)",
            "actions.skew_clock('gateway', offset_s=60, ttl_s=600, configuration=cfg)",
        ]))
        held = kernel_state(state_dir, base)
        spec = load_spec(state_dir)
        faults = inventory.holdings(spec)
        assert {"namespaces", "links", "chains", "cgroups", "mounts", "nfqueue"} <= set(held), held
        assert len(faults["faults"]) == 7 and faults["qdiscs"] and len(faults["workers"]) == 2, faults
        done = run_chaoslab("down", "--state-dir", state_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert kernel_state(state_dir, base) == {}
        assert_no_lab_process(state_dir, base)
        assert not list((state_dir / "clock").glob("*.faketime")) or all(
            p.read_text().strip() == "+0" for p in (state_dir / "clock").glob("*.faketime"))
    finally:
        run_chaoslab("down", "--state-dir", state_dir)
        release_base_port(base)
