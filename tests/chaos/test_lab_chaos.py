"""Every native experiment, shortened, for real: `chaoslab chaos run` against a real lab under the built-in
order stream, judged from its journal. Then the experiments that must be reported as failed although
`chaos run` exits 0, the safeguard, and the admin API's token. After every run, nothing is left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chaoslab.chaos import actions, probes
from chaoslab.chaos.experiments import resolve
from chaoslab.chaos.runner import RunOptions, RunResult, run
from chaoslab.lab import faults
from support.lab import run_chaoslab

pytestmark = pytest.mark.lab
TEST_EXPERIMENTS = Path(__file__).parent / "experiments"
LOAD_RATE = 5.0
WARMUP_S = 6.0

# Shortened by configuration, not by editing the experiments: (experiment, vars, bounds on measurements).
# Order matters a little: the 30 s error window of the kill experiment goes first, before any run leaves
# 5xx behind; the latency experiments, whose alerts take a minute to resolve, go last.
NATIVE = [
    ("kill-payments-replica", {"observe_s": 3}, {"time_to_recover": 15}),
    ("auth-down", {}, {}),
    ("poison-message", {}, {"time_to_detect": 30}),
    ("broker-outage", {"outage_s": 8}, {"time_to_detect": 30}),
    ("payments-down", {}, {"time_to_detect": 20}),
    # LatencyBurnRateFast's 2 m window crosses 14.4% after 0.144 x 120 s / r, r the share of orders' requests the burn
    # slows (docs/detection.md), then its `for` (4 s) and an evaluation: 25 s held only for r >= 0.9, and a busy
    # machine gave less (CI: still pending at 25 s). When the burn slows orders past the gateway's 3 s timeout, the
    # gateway's breaker sheds orders' traffic and r falls further: a clean-clone run saw 503s for most orders and the
    # alert notified at 42 s. 45 s holds down to r = 0.45
    ("cpu-burn-orders", {"burn_s": 45, "alert_within_s": 45}, {"time_to_detect": 45}),
    ("payments-latency", {}, {"time_to_detect": 60, "breaker_open": 30}),
]


def run_experiment(path: Path, lab: dict[str, Any], tmp_path: Path, variables: dict[str, Any]) -> RunResult:
    options = RunOptions(path, Path(lab["state_dir"]), tmp_path / "runs", "orders", LOAD_RATE, WARMUP_S, variables)
    return run(options)


def explain(result: RunResult) -> str:
    steps = [f"{s.phase} {s.name}: {s.status} {s.detail}" for s in result.verdict.steps if not s.ok]
    return f"{result.run_dir}: {result.verdict.failures} {steps}"


def assert_nothing_left(config: dict[str, str]) -> None:
    assert probes.active_faults(configuration=config) == 0
    assert faults.paused_programs(faults.supervisor_of(config["chaoslab_state_dir"])) == []
    assert probes.lab_ready(configuration=config)


@pytest.mark.parametrize(("name", "variables", "bounds"), NATIVE, ids=[n for n, _, _ in NATIVE])
def test_native_experiment_passes_under_load(name: str, variables: dict[str, Any], bounds: dict[str, float],
                                             chaos_lab: dict[str, Any], lab_config: dict[str, str],
                                             tmp_path: Path) -> None:
    result = run_experiment(resolve(name), chaos_lab, tmp_path, variables)
    assert result.verdict.passed, explain(result)
    assert result.leftovers == {}, "the rollbacks left something for the runner to undo"
    assert result.load_summary and result.load_summary["requests"] > 0
    measured = {m["measure"]: m["seconds"] for m in result.verdict.measurements}
    for measure, bound in bounds.items():
        assert measured[measure] <= bound, (measure, measured)
    assert (result.run_dir / "journal.json").is_file() and (result.run_dir / "verdict.json").is_file()
    assert_nothing_left(lab_config)


def test_a_hypothesis_that_cannot_hold_is_a_failure_although_chaos_run_exits_0(
        chaos_lab: dict[str, Any], lab_config: dict[str, str], tmp_path: Path) -> None:
    result = run_experiment(TEST_EXPERIMENTS / "impossible-hypothesis.json", chaos_lab, tmp_path, {})
    assert result.chaos_exit_code == 0
    assert not result.verdict.passed
    assert any("not met before the method" in f for f in result.verdict.failures)
    assert_nothing_left(lab_config)


def test_a_method_action_that_raises_is_a_failure_and_its_fault_is_rolled_back(
        chaos_lab: dict[str, Any], lab_config: dict[str, str], tmp_path: Path) -> None:
    result = run_experiment(TEST_EXPERIMENTS / "action-raises.json", chaos_lab, tmp_path, {})
    assert result.chaos_exit_code == 0
    assert not result.verdict.passed
    assert result.verdict.failures == ["method action 'kill-a-replica-that-does-not-exist' failed"]
    assert result.leftovers == {}  # the latency fault of the first action was cleared by the rollback
    assert_nothing_left(lab_config)


def test_the_safeguard_aborts_a_run_that_burns_the_error_budget_and_the_fault_is_rolled_back(
        chaos_lab: dict[str, Any], lab_config: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_experiment(TEST_EXPERIMENTS / "safeguard-abort.json", chaos_lab, tmp_path, {})
    # the method holds the fault 40 s: a run much shorter than that was cut short by the safeguard
    assert time.monotonic() - started < WARMUP_S + 30, "the run was not cut short"
    assert result.verdict.status == "interrupted" and not result.verdict.passed
    assert any("safeguard 'error-budget-burn-under-limit' aborted the run" in f for f in result.verdict.failures)
    assert [s.status for s in result.verdict.steps if s.phase == "rollback"] == ["succeeded", "succeeded"]
    assert result.leftovers == {}
    assert_nothing_left(lab_config)


def test_the_admin_api_refuses_requests_without_the_admin_token(chaos_lab: dict[str, Any]) -> None:
    token = chaos_lab["admin_token"]
    body = {"kind": "error", "ttl_s": 30, "status": 500}
    for service in chaos_lab["services"].values():
        admin_url = service["replicas"][0]["admin_url"]
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": token}):
            for method, path in (("GET", "/admin/faults"), ("POST", "/admin/faults"), ("DELETE", "/admin/faults"),
                                 ("GET", "/admin/audit")):
                resp = requests.request(method, admin_url + path, headers=headers, json=body, timeout=5)
                assert resp.status_code == 401, (admin_url, method, path, headers)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = requests.get(f"{admin_url}/admin/faults", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert resp.status_code == 200 and resp.json() == {"faults": []}  # the refused POSTs created nothing


def test_faults_expire_by_their_ttl_and_chaoslab_faults_lists_and_clears_them(
        chaos_lab: dict[str, Any], lab_config: dict[str, str]) -> None:
    state = chaos_lab["state_dir"]
    actions.inject_latency("payments", 150, jitter_ms=20, percent=50, ttl_s=2, replica=1, configuration=lab_config)
    actions.inject_errors("orders", status=500, percent=10, route="/orders", ttl_s=120, configuration=lab_config)
    listed = run_chaoslab("faults", "--state-dir", state)
    assert listed.returncode == 0, listed.stderr
    assert "payments-1" in listed.stdout and "latency" in listed.stdout and "150 ± 20 ms" in listed.stdout
    assert "orders-1" in listed.stdout and "/orders" in listed.stdout and "500" in listed.stdout
    time.sleep(2.5)
    assert probes.active_faults("payments", configuration=lab_config) == 0  # gone by its TTL
    assert probes.active_faults("orders", configuration=lab_config) == 1
    # process faults have no TTL: the table shows them, --clear undoes them too
    actions.pause_replica("payments", 2, configuration=lab_config)
    faults.stop_programs(faults.supervisor_of(lab_config["chaoslab_state_dir"]), ["payments-3"])
    listed = run_chaoslab("faults", "--state-dir", state)
    assert "paused (SIGSTOP)" in listed.stdout and "stopped" in listed.stdout
    cleared = run_chaoslab("faults", "--clear", "--state-dir", state)
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared 1 fault(s); resumed payments-2; started payments-3" in cleared.stdout
    assert "no active fault" in run_chaoslab("faults", "--state-dir", state).stdout
    probes.time_to_recover("payments", timeout_s=30, configuration=lab_config)


def test_a_paused_replica_is_found_and_resumed(chaos_lab: dict[str, Any], lab_config: dict[str, str]) -> None:
    [paused] = actions.pause_replica("payments", 2, configuration=lab_config)
    try:
        sv = faults.supervisor_of(lab_config["chaoslab_state_dir"])
        assert faults.paused_programs(sv) == ["payments-2"]
        assert not probes.service_ready("payments", configuration=lab_config)  # it answers nothing
    finally:
        assert actions.resume_replicas(configuration=lab_config) == ["payments-2"]
    probes.time_to_recover("payments", timeout_s=10, configuration=lab_config)
    assert paused["name"] == "payments-2" and faults.paused_programs(sv) == []


def test_chaoslab_chaos_cli_lists_validates_and_runs_with_a_verdict(chaos_lab: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    listed = run_chaoslab("chaos", "list")
    assert listed.returncode == 0 and "kill-payments-replica" in listed.stdout
    assert run_chaoslab("chaos", "validate").returncode == 0
    # a failing run exits 1 whatever chaos run said; the verdict table says why
    done = run_chaoslab("chaos", "run", str(TEST_EXPERIMENTS / "action-raises.json"), "--state-dir",
                        chaos_lab["state_dir"], "--runs-dir", tmp_path, "--warmup", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "chaos run exited 0" in done.stdout
    [run_dir] = list(tmp_path.glob("*-chaos-action-raises"))
    assert {"journal.json", "verdict.json", "vars.json", "chaostoolkit.log"} <= {p.name for p in run_dir.iterdir()}
