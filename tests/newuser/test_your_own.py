"""Playing the new user of issue 25 against a real lab: write an experiment with `chaos new`, edit it, run it in
YAML; run a locustfile of one's own through `chaoslab load` and through a plan; make each mistake the issue lists
and get a message, an exit code and nothing left active; start two commands against one lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaoslab.clients.prometheus import Prometheus
from support.lab import repo_root
from support.waiting import eventually

from .conftest import Cli

pytestmark = pytest.mark.lab

USERS = '''\
from locust import HttpUser, between, task


class CatalogueBrowser(HttpUser):
    wait_time = between(0.1, 0.3)

    @task
    def catalogue(self):
        self.client.get("/api/catalogue", name="/api/catalogue")


class LostBrowser(HttpUser):
    wait_time = between(0.1, 0.3)

    @task
    def nowhere(self):
        self.client.get("/api/no-such-page", name="/api/no-such-page")
'''


def _faults(cli: Cli) -> dict[str, Any]:
    done = cli("faults", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _active(cli: Cli) -> int:
    state = _faults(cli)
    return sum(len(r.get("faults") or []) for r in state["replicas"]) + sum(map(len, state["processes"].values()))


def _new_experiment(cli: Cli, workdir: Path, name: str, fault_s: int) -> Path:
    done = cli("chaos", "new", name, "--fault", "latency", "--target", "orders")
    assert done.returncode == 0, done.stderr
    path = workdir / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith(f"# {name}: written by `chaoslab chaos new"), text[:200]
    # the edit a user makes: a shorter fault, a gentler latency (comments kept: a text edit, not a re-dump)
    text = text.replace("fault_s: 20", f"fault_s: {fault_s}").replace("latency_ms: 500", "latency_ms: 300")
    path.write_text(text)
    return path


def test_an_experiment_written_from_the_template_runs_in_yaml(cli: Cli, workdir: Path) -> None:
    path = _new_experiment(cli, workdir, "slow-orders", 4)
    assert cli("chaos", "new", "slow-orders", "--fault", "latency", "--target", "orders").returncode == 2  # exists
    checked = cli("chaos", "validate", path.name, "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)[0]["valid"], checked.stdout
    done = cli("chaos", "run", path.name, "--load", "orders", "--warmup", "3", "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    verdict = json.loads(done.stdout)
    assert verdict["passed"] and verdict["status"] == "completed"
    assert {m["measure"] for m in verdict["measurements"]} == {"time_to_recover", "time_to_steady"}
    assert verdict["load"]["requests"] > 0
    assert _active(cli) == 0

    # the same journal judged again, as for a plain `chaos run`; a tampered one fails
    journal = Path(verdict["run_dir"]) / "journal.json"
    judged = cli("chaos", "judge", journal)
    assert judged.returncode == 0 and "PASSED" in judged.stdout, judged.stdout
    data = json.loads(journal.read_text())
    data["run"][0]["status"] = "failed"
    (workdir / "tampered.json").write_text(json.dumps(data))
    judged = cli("chaos", "judge", "tampered.json", "--json")
    assert judged.returncode == 1 and not json.loads(judged.stdout)["passed"]


def test_each_mistake_gets_a_message_an_exit_code_and_leaves_nothing(cli: Cli, user_lab: dict[str, Any],
                                                                    workdir: Path) -> None:
    path = _new_experiment(cli, workdir, "mistakes", 2)
    text = path.read_text()
    (workdir / "typo.yaml").write_text(text.replace("func: inject_latency", "func: inject_latncy"))
    done = cli("chaos", "run", "typo.yaml")
    assert done.returncode == 2 and "chaoslab.chaos.actions.inject_latncy is not exported" in done.stderr
    done = cli("chaos", "run", "mistakes.yaml", "--var", "fault_secs=3")
    assert done.returncode == 2 and "--var fault_secs" in done.stderr and "did you mean fault_s?" in done.stderr
    (workdir / "broken.yaml").write_text(text.replace("  fault_s: 2\n", "  fault_s: 2\n   oops: [\n"))
    done = cli("chaos", "validate", "broken.yaml")
    assert done.returncode == 1 and "broken.yaml:" in done.stdout and "not valid YAML" in done.stdout, done.stdout
    done = cli("chaos", "run", "no-such-experiment.yaml")
    assert done.returncode == 2 and "no experiment 'no-such-experiment.yaml'" in done.stderr
    assert cli("chaos", "validate", "mistakes.yaml", "--state-dir", user_lab["state_dir"]).returncode == 0
    # a plan: an experiment path relative to the plan, an alert label the catalogue cannot give
    plans = workdir / "plans"
    plans.mkdir(exist_ok=True)
    (plans / "bad.yaml").write_text(yaml.safe_dump({
        "name": "bad", "experiments": [
            {"experiment": "../mistakes.yaml", "vars": {"fault_secs": 1}},
            {"experiment": "payments-down",
             "alerts": [{"name": "ServiceDown", "labels": {"servce": "payments"}, "max_time_to_detect_s": 30}]}]}))
    done = cli("gameday", "--plan", "plans/bad.yaml", "--check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "experiments.mistakes.vars.fault_secs: the experiment has no such configuration key" in done.stderr
    assert "label 'servce': ServiceDown never carries it" in done.stderr
    assert _active(cli) == 0


def test_ctrl_c_and_a_second_command_against_the_same_lab(cli: Cli, user_lab: dict[str, Any],
                                                         workdir: Path) -> None:
    _new_experiment(cli, workdir, "long", 60)
    short = _new_experiment(cli, workdir, "short", 2)
    env = dict(os.environ, CHAOSLAB_STATE_DIR=user_lab["state_dir"])
    first = subprocess.Popen([sys.executable, "-m", "chaoslab.cli", "chaos", "run", "long.yaml"], cwd=workdir,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: _active(cli) > 0, timeout_s=60, what="the long experiment's fault")
        status = json.loads(cli("status", "--json").stdout)
        assert status["lease"]["pid"] == first.pid and "long.yaml" in status["lease"]["command"]
        refused = cli("chaos", "run", short.name)
        assert refused.returncode == 4 and f"pid {first.pid}" in refused.stderr, refused.stderr
        assert cli("scale", "orders=2").returncode == 4
        assert cli("scale-test", "payments", "--replicas", "1,2").returncode == 4  # it scales and sets env too
        gameday = cli("gameday", "--plan", "quick")  # the case: it restarted the run's stopped service
        assert gameday.returncode == 4 and f"pid {first.pid}" in gameday.stderr, gameday.stdout + gameday.stderr
        second = subprocess.Popen([sys.executable, "-m", "chaoslab.cli", "chaos", "run", short.name, "--wait", "120",
                                   "--json"], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        time.sleep(2)
        assert second.poll() is None, "the waiting command did not wait"
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 130, out + err
        assert "interrupted" in err and "rollback" in out and "restore-the-lab" in out, out + err
        out2, err2 = second.communicate(timeout=300)
        assert second.returncode == 0, out2[-2000:] + err2[-2000:]
        assert "waiting for the lab's lease" in err2
        verdict = json.loads(out2)
        assert verdict["passed"] and verdict["title"].startswith("short:")
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    assert _active(cli) == 0
    assert json.loads(cli("status", "--json").stdout)["lease"] is None


def test_your_own_locustfile_through_chaoslab_load(cli: Cli, workdir: Path, user_lab: dict[str, Any]) -> None:
    (workdir / "my_locustfile.py").write_text(USERS)
    done = cli("load", "smoke", "--locustfile", "my_locustfile.py", "--user-class", "CatalogueBrowser",
               "--duration", "12", "--run-dir", "runs/mine")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = json.loads((workdir / "runs/mine/summary.json").read_text())
    names = {row["name"] for row in summary["entries"]}
    assert names == {"/api/catalogue"} and summary["total"]["requests"] > 20, summary["total"]
    # the same client metrics as the built-in scenarios, scraped by the lab's Prometheus as job=locust
    scraped = Prometheus(user_lab["prometheus_url"], timeout_s=5).query(
        'max_over_time(locust_requests_total{job="locust",name="/api/catalogue"}[5m])')
    assert scraped and max(s.value for s in scraped) > 0, scraped
    # every class of the file, one of which is lost: the thresholds see its 404s
    done = cli("load", "smoke", "--locustfile", "my_locustfile.py", "--duration", "10", "--run-dir", "runs/all")
    assert done.returncode == 1 and "threshold(s) violated" in done.stderr, done.stdout[-2000:] + done.stderr
    done = cli("load", "smoke", "--locustfile", "my_locustfile.py", "--user-class", "Shopper")
    assert done.returncode == 2 and "defines no class Shopper (it defines: CatalogueBrowser, LostBrowser)" in \
        done.stderr
    (workdir / "broken_locustfile.py").write_text(USERS.replace("def nowhere(self):", "def nowhere(self)"))
    done = cli("load", "smoke", "--locustfile", "broken_locustfile.py")
    assert done.returncode == 2 and "broken_locustfile.py:16:" in done.stderr and "not valid Python" in done.stderr


@pytest.mark.slow
def test_your_own_locustfile_and_experiment_in_a_plan(cli: Cli, workdir: Path) -> None:
    _new_experiment(cli, workdir, "planned", 3)
    (workdir / "my_locustfile.py").write_text(USERS)
    folder = workdir / "gamedays"
    folder.mkdir(exist_ok=True)
    (folder / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine",
        "load": {"scenario": "smoke", "users": 3, "baseline_s": 10, "warmup_s": 3,
                 "locustfile": "../my_locustfile.py", "user_classes": ["CatalogueBrowser"]},
        "experiments": [{"experiment": "../planned.yaml", "max_time_to_recover_s": 30, "settle_s": 5}]}))
    assert cli("gameday", "--plan", "gamedays/mine.yaml", "--check").returncode == 0
    done = cli("gameday", "--plan", "gamedays/mine.yaml", "--runs-dir", "runs", timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summaries = list((workdir / "runs").glob("*-gameday-mine/summary.json"))
    assert len(summaries) == 1
    result = json.loads(summaries[0].read_text())
    baseline = result["load"]["baseline"]
    assert {r["name"] for r in baseline["summary"]["entries"]} == {"/api/catalogue"}
    assert {r["name"] for r in result["load"]["under_experiments"]["summary"]["entries"]} == {"/api/catalogue"}
    assert result["passed"] and all(v["passed"] for v in result["verdicts"]), result["verdicts"]


def test_the_write_your_own_docs_name_real_commands() -> None:
    """The README's and chaos/README.md's "Write your own" sections exist, and every chaoslab command they show
    is one the CLI has (its --help exits 0)."""
    commands: set[tuple[str, ...]] = set()
    for doc in ("README.md", "chaos/README.md"):
        text = (repo_root() / doc).read_text()
        assert "## Write your own" in text, doc
        section = text.split("## Write your own", 1)[1].split("\n## ", 1)[0]
        for line in section.splitlines():
            words = line.strip().split()
            if words[:1] != ["chaoslab"]:
                continue
            path = []
            for word in words[1:]:
                if word.startswith("-") or not word.replace("-", "").isalpha():
                    break
                path.append(word)
            commands.add(tuple(path[:2]))
    assert len(commands) >= 4, commands
    for path in commands:
        done = subprocess.run([sys.executable, "-m", "chaoslab.cli", *path, "--help"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (path, done.stderr)
