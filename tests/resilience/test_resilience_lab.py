"""Resilience over time against a real lab of the module's own (payments=2), every fault a real one:

- seeded random chaos: the same seed draws the same schedule three times, and the run plays exactly that schedule
  (targets, replicas, times), judges every fault window and leaves nothing active;
- Ctrl-C (SIGINT) in the middle of random chaos, with a paused replica and an in-service fault active: exit 130,
  every fault rolled back, `chaoslab faults --json` empty, the lease free;
- the safeguard: random chaos that burns the gateway's error budget past its limit is stopped and rolled back;
- two overlapping faults (the broker out while payments is down): both rolled back, both judged, each alert
  attributed to its own fault;
- compare: two sets of three seeded repetitions of one commit show no regression; a deliberate regression
  (payments' provider latency raised with `chaoslab env`) is a significant one, named in JUnit; the three
  repetitions of a set chose the same replica at the same time.

About 5 minutes of lab time on a busy 2-core machine; faults of a few seconds, no baselines, short settles.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaoslab.clients.prometheus import Prometheus
from chaoslab.lab.paths import repo_root
from chaoslab.observability import slos
from support.lab import (
    assert_no_lab_process,
    release_base_port,
    replica_args,
    reserve_base_port,
    run_chaoslab,
    start_lab,
)

pytestmark = pytest.mark.lab

PLANS = Path(__file__).parent / "plans"
RUN_TIMEOUT_S = 400
# what `chaos random` gets in these tests: faults of a few seconds, a short warmup, per-window budgets that the
# faults chosen here can meet on a busy 2-core machine
SHORT = ["--fault-duration", "3s-5s", "--gap", "3s-6s", "--rest", "3s", "--warmup", "4", "--settle", "5",
         "--no-audit"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("resilience") / "state"
    base = reserve_base_port()
    try:
        registry = start_lab(state_dir, base, *replica_args("payments=2"))
        yield registry
        down = run_chaoslab("down", "--state-dir", state_dir)
        assert down.returncode == 0, down.stderr
        assert_no_lab_process(state_dir)
    finally:
        release_base_port(base)


def state(lab: dict[str, Any]) -> str:
    return str(lab["state_dir"])


def nothing_active(lab: dict[str, Any]) -> dict[str, Any]:
    """`chaoslab faults --json` asserted empty: no in-service fault on any replica, nothing paused or stopped."""
    done = run_chaoslab("faults", "--json", "--state-dir", state(lab))
    assert done.returncode == 0, done.stderr
    faults = json.loads(done.stdout)
    active = {r["replica"]: r["faults"] for r in faults["replicas"] if r.get("faults")}
    assert not active and not faults["processes"]["paused"] and not faults["processes"]["stopped"], faults
    return dict(faults)


def calm(lab: dict[str, Any], timeout_s: float = 60.0, window: str = "10s") -> None:
    """Wait until the gateway's error ratio over `window` is back under 1%: the next run's steady state starts from
    a calm lab (the previous test's faults made errors)."""
    prom = Prometheus(lab["prometheus_url"])
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if (prom.scalar(slos.http_error_ratio(window, 'service="gateway"'), empty=0.0) or 0.0) <= 0.01:
            return
        time.sleep(2)


def summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


def verdicts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in data["verdicts"]}


def random_chaos(lab: dict[str, Any], runs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_chaoslab("chaos", "random", "--state-dir", state(lab), "--runs-dir", runs, *args,
                        timeout=RUN_TIMEOUT_S)


def test_random_chaos_is_reproducible_and_plays_its_schedule(lab: dict[str, Any], tmp_path: Path) -> None:
    args = ["--duration", "18s", "--seed", "7", "--faults", "kill,latency,pause", *SHORT]
    drawn = [random_chaos(lab, tmp_path, *args, "--dry-run", "--json") for _ in range(3)]
    assert all(d.returncode == 0 for d in drawn), drawn[0].stderr
    schedules = [json.loads(d.stdout)["faults"] for d in drawn]
    assert schedules[0] == schedules[1] == schedules[2] and len(schedules[0]) >= 3
    assert not list(tmp_path.iterdir())  # a dry run injects nothing and writes nothing
    calm(lab)
    # killing the only orders replica fails a third of the gateway's requests (a burn of ~340x, around the
    # default safeguard's 250x): the safeguard has a test of its own, this one wants the whole schedule played
    done = random_chaos(lab, tmp_path, *args, "--max-error-ratio", "1", "--max-burn-rate", "100000", "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["schedule"] == schedules[0]  # the run drew the same schedule as the dry runs
    played = {w["name"]: w for w in result["windows"]}
    for planned in schedules[0]:
        window = played[planned["name"]]
        assert (window["kind"], window["target"], window["replica"]) == \
               (planned["kind"], planned["target"], planned["replica"])
        assert abs(window["offset_s"] - planned["at_s"]) < 1.5, (window, planned)  # on the schedule's clock
        assert window["undone_by"] == "schedule"
    named = verdicts(result)
    for planned in schedules[0]:
        for verdict in ("injected", "rolled back", "time-to-recover", "client error ratio"):
            assert named[f"{planned['name']}: {verdict}"]["status"] == "passed", named[f"{planned['name']}: {verdict}"]
    assert named["run and rollbacks"]["status"] == named["safeguard"]["status"] == "passed"
    nothing_active(lab)
    run_dir = Path(result["run_dir"])
    html = (run_dir / "report.html").read_text()
    assert html.count('class="scheduled-fault"') == len(schedules[0]) and 'id="score"' in html
    assert "gameday random-7" in (run_dir / "junit.xml").read_text()
    history = json.loads(run_chaoslab("history", "--json", "--plan", "random-7", "--state-dir", state(lab)).stdout)
    assert [r["seed"] for r in history] == [7] and history[0]["score"] == summary(run_dir)["resilience"]["score"][
        "value"]


def test_ctrl_c_rolls_back_every_fault_and_leaves_nothing_active(lab: dict[str, Any], tmp_path: Path) -> None:
    """Seed 4 draws a latency fault on orders, then a pause of a users replica, each for 25-30 s: Ctrl-C while both
    act. A paused replica has no TTL: only the rollback ends it."""
    calm(lab)
    out = tmp_path / "random.out"
    command = [sys.executable, "-m", "chaoslab.cli", "chaos", "random", "--duration", "60s", "--seed", "4",
               "--faults", "pause,latency", "--fault-duration", "25s-30s", "--gap", "2s-4s", "--rest", "3s",
               "--warmup", "3", "--max-burn-rate", "100000", "--state-dir", state(lab), "--runs-dir",
               str(tmp_path / "runs")]
    with open(out, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=repo_root())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and out.read_text().count(" injected") < 2:
            assert proc.poll() is None, out.read_text()[-3000:]
            time.sleep(0.5)
        assert out.read_text().count(" injected") >= 2, out.read_text()[-3000:]
        before = json.loads(run_chaoslab("faults", "--json", "--state-dir", state(lab)).stdout)
        # both faults really act: the test could not pass on a scheduler that injected nothing
        assert before["processes"]["paused"] == ["users-1"], before
        assert [r["replica"] for r in before["replicas"] if r.get("faults")] == ["orders-1"], before
        held = run_chaoslab("status", "--json", "--state-dir", state(lab))
        assert "chaos random" in json.dumps(json.loads(held.stdout).get("lease")), held.stdout[-500:]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert code == 130, text[-3000:]
    assert "undone (interrupt)" in text and "Traceback" not in text
    nothing_active(lab)
    assert "lease: free" in run_chaoslab("status", "--state-dir", state(lab)).stdout
    [run_dir] = (tmp_path / "runs").glob("*-gameday-random-4")
    data = summary(run_dir)
    named = verdicts(data)
    assert data["interrupted"] and not data["passed"]
    for fault in ("F01-latency-orders", "F02-pause-users"):
        assert named[f"{fault}: rolled back"]["status"] == "passed"
        assert "interrupt" in named[f"{fault}: rolled back"]["detail"]
    assert named["run and rollbacks"]["status"] == "failed"  # interrupted: the run is not a pass
    assert "never started" in named["run and rollbacks"]["detail"]


def test_the_safeguard_stops_random_chaos_and_rolls_back(lab: dict[str, Any], tmp_path: Path) -> None:
    """Pausing users stalls logins and profiles: the gateway's errors burn its budget far past 50x."""
    calm(lab)
    done = random_chaos(lab, tmp_path, "--duration", "40s", "--seed", "1", "--faults", "pause", "--targets", "users",
                        "--fault-duration", "20s-25s", "--gap", "2s-3s", "--warmup", "4", "--settle", "5",
                        "--no-audit", "--max-burn-rate", "50", "--max-error-ratio", "1")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    [run_dir] = tmp_path.glob("*-gameday-random-1")
    data = summary(run_dir)
    named = verdicts(data)
    assert named["safeguard"]["status"] == "failed" and named["safeguard"]["measured"] > 50
    fault = next(n for n in named if n.endswith(": rolled back"))
    assert named[fault]["status"] == "passed" and "safeguard" in named[fault]["detail"]
    [window] = data["experiments"][0]["combined"]["windows"]
    assert window["end"] - window["start"] < 20  # undone well before its planned 20-25 s
    nothing_active(lab)


def test_a_chaos_run_and_a_load_run_are_recorded_with_their_seed_and_figures(lab: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    """`chaos run --seed` draws its "one replica, at random" from the seed (the kill hits the replica the seed
    picks), and both a chaos run and a load run land in the history with their figures."""
    from chaoslab.chaos import seeds

    calm(lab, window="30s")  # the experiment's own hypothesis reads the gateway's errors over 30 s
    done = run_chaoslab("chaos", "run", "kill-payments-replica", "--seed", "5", "--load", "orders", "--load-rate", "3",
                        "--warmup", "2", "--var", "min_replicas=2", "--var", "observe_s=1", "--state-dir", state(lab),
                        "--runs-dir", tmp_path, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    [run_dir] = tmp_path.glob("*-chaos-kill-payments-replica")
    journal = json.loads((run_dir / "journal.json").read_text())
    [killed] = journal["run"][0]["output"]
    names = ["payments-1", "payments-2"]  # the running replicas the extension draws from, in the registry's order
    assert killed["name"] == random.Random(seeds.derive(5, "payments", *names)).choice(names), killed
    assert json.loads((run_dir / "verdict.json").read_text())["seed"] == 5
    loaded = run_chaoslab("load", "smoke", "--users", "2", "--duration", "6s", "--run-dir", tmp_path / "smoke",
                          "--state-dir", state(lab), timeout=RUN_TIMEOUT_S)
    assert loaded.returncode in (0, 1), loaded.stdout[-2000:] + loaded.stderr[-2000:]
    history = {r["kind"]: r for r in json.loads(run_chaoslab("history", "--json", "--last", "2", "--state-dir",
                                                             state(lab)).stdout)}
    experiment, load = history["experiment"], history["load"]
    assert (experiment["name"], experiment["seed"], experiment["status"]) == ("kill-payments-replica", 5, "passed")
    figures = {(f["suite"], f["figure"]) for f in experiment["figures"]}
    assert {("kill-payments-replica", "time_to_recover_s"), ("run", "client_error_ratio"), ("run", "score")} <= figures
    assert {v["name"] for v in experiment["verdicts"]} >= {"steady state before", "during the fault",
                                                          "run and rollbacks"}
    assert load["name"] == "smoke" and load["status"] == ("passed" if loaded.returncode == 0 else "failed")
    assert {f["figure"] for f in load["figures"]} >= {"client_error_ratio", "client_p99_s", "score"}


@pytest.mark.slow
def test_two_overlapping_faults_are_both_rolled_back_and_judged(lab: dict[str, Any], tmp_path: Path) -> None:
    calm(lab)
    done = run_chaoslab("gameday", "--plan", PLANS / "overlap.yaml", "--state-dir", state(lab), "--runs-dir",
                        tmp_path, timeout=RUN_TIMEOUT_S)
    [run_dir] = tmp_path.glob("*-gameday-overlap")
    data = summary(run_dir)
    named = verdicts(data)
    # this verdicts: each fault's own, and the combination's; all of them must pass
    mine = [f"{fault}: {verdict}" for fault in ("broker-out", "payments-down")
            for verdict in ("injected", "rolled back", "time-to-recover", "client error ratio")]
    mine += ["broker-out: alert BrokerDown attributed",
             'payments-down: alert ServiceDown{service="payments"} attributed',
             "steady state before", "safeguard", "run and rollbacks", "time-to-recover", "client error ratio",
             "data audit", "alert BrokerDown notified", 'alert ServiceDown{service="payments"} notified']
    failed = [n for n in mine if named[n]["status"] != "passed"]
    assert not failed, ([named[n] for n in failed], done.stdout[-4000:])
    combined = data["experiments"][0]["combined"]
    windows = {w["name"]: w for w in combined["windows"]}
    assert windows["broker-out"]["overlaps"] == ["payments-down"] and windows["payments-down"]["overlaps"] == [
        "broker-out"]
    attributed = {a["name"]: a["fault"] for a in combined["attribution"]
                  if a["name"] in ("BrokerDown", "ServiceDown") and a["labels"].get("service") in (None, "payments")}
    assert attributed == {"BrokerDown": "broker-out", "ServiceDown": "payments-down"}, combined["attribution"]
    html = (run_dir / "report.html").read_text()
    assert "fault on broker" in html and "fault on payments" in html  # one timeline lane per target
    nothing_active(lab)


def gameday_set(lab: dict[str, Any], runs: Path) -> Path:
    calm(lab)
    done = run_chaoslab("gameday", "--plan", PLANS / "tiny.yaml", "--repeat", "3", "--seed", "42", "--state-dir",
                        state(lab), "--runs-dir", runs, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    [set_dir] = runs.glob("*-set-tiny")
    record = json.loads((set_dir / "set.json").read_text())
    assert record["seed"] == 42 and [r["repetition"] for r in record["runs"]] == [1, 2, 3]
    return set_dir


def same_draws(set_dir: Path) -> None:
    """Three repetitions with one seed: the same replica killed, at the same moment of the schedule."""
    played = []
    for run in sorted(set_dir.glob("*-gameday-tiny")):
        combined = summary(run)["experiments"][0]["combined"]
        [fault] = combined["outcome"]["faults"]
        played.append((fault["planned"], [k["name"] for k in fault["injected"]],
                       round(fault["inject_started"] - combined["outcome"]["started"])))
    assert len(played) == 3 and played[0] == played[1] == played[2], played


@pytest.mark.slow
def test_compare_no_regression_in_one_commit_and_a_deliberate_one(lab: dict[str, Any], tmp_path: Path) -> None:
    base = gameday_set(lab, tmp_path / "base")
    same = gameday_set(lab, tmp_path / "same")
    for set_dir in (base, same):
        same_draws(set_dir)
    # stated tolerance for p99: on a machine shared with other suites, two quiet sets' p99s differ by up to ~0.2 s
    tolerance = ["--tolerance", "client_p99_s=0.25"]
    done = run_chaoslab("compare", base, same, *tolerance, "--junit", tmp_path / "same.xml", "--state-dir",
                        state(lab))
    print(done.stdout)  # shown with -s: the README's example comes from such a run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no significant regression" in done.stdout
    changed = run_chaoslab("env", "payments:PROVIDER_LATENCY_MS=600", "--state-dir", state(lab))
    assert changed.returncode == 0, changed.stderr
    try:
        slow = gameday_set(lab, tmp_path / "slow")
    finally:
        restored = run_chaoslab("env", "payments:PROVIDER_LATENCY_MS=", "--state-dir", state(lab))
        assert restored.returncode == 0, restored.stderr
    done = run_chaoslab("compare", base, slow, *tolerance, "--junit", tmp_path / "slow.xml", "--json",
                        "--state-dir", state(lab))
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    p99 = next(f for f in result["figures"] if f["suite"] == "run" and f["figure"] == "client_p99_s")
    assert p99["verdict"] == "regression" and p99["interval"][0] > 0.25, p99
    assert "client p99" in done.stderr
    failures = [c.get("name") for c in ET.parse(tmp_path / "slow.xml").getroot().iter("testcase")
                if c.find("failure") is not None]
    assert "client p99" in failures
    sets = run_chaoslab("history", "--plan", "tiny", "--state-dir", state(lab))
    assert base.name in sets.stdout and slow.name in sets.stdout


@pytest.mark.slow
def test_a_set_started_from_an_idle_lab_with_down_stops_it(tmp_path: Path) -> None:
    """The CI recipe (docs/resilience.md): `gameday --repeat N --down` from no lab starts one, runs the set in it
    and stops it after the last repetition, leaving no process."""
    state_dir = tmp_path / "state"
    base = reserve_base_port()
    try:
        done = run_chaoslab("gameday", "--plan", PLANS / "tiny.yaml", "--repeat", "2", "--seed", "1", "--down",
                            "--state-dir", state_dir, "--base-port", str(base), "--runs-dir", tmp_path / "runs",
                            timeout=RUN_TIMEOUT_S)
        # the verdicts are not this test's business: a lab killed into seconds after it started may well fail its
        # client budget (27% of errors was seen), and the set must still be stopped
        assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
        assert "stopped the lab the set started" in done.stdout
        [set_dir] = (tmp_path / "runs").glob("*-set-tiny")
        runs = json.loads((set_dir / "set.json").read_text())["runs"]
        assert [r["repetition"] for r in runs] == [1, 2] and {r["status"] for r in runs} <= {"passed", "failed"}
        assert (done.returncode == 1) == ("failed" in {r["status"] for r in runs})
        assert_no_lab_process(state_dir, base)
    finally:
        run_chaoslab("down", "--state-dir", state_dir)
        release_base_port(base)
