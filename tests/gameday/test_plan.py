"""Plans (quick): the shipped ones are valid, defaults merge key by key, and every kind of mistake is reported
with where it is before anything runs; the CLI refuses a bad plan with exit code 2."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaoslab.gameday import plan as plans

pytestmark = pytest.mark.quick

Cli = Callable[..., subprocess.CompletedProcess[str]]


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "tiny", "experiments": [{"experiment": "poison-message"}], **extra}


@pytest.mark.parametrize("name", plans.BUILTIN)
def test_the_shipped_plans_are_valid(name: str) -> None:
    plan = plans.load(name)
    assert plan.name == name and plan.experiments
    for spec in plan.experiments:
        for alert in spec.alerts:
            assert alert.max_time_to_detect_s > 0


def test_the_quick_plan_stays_short() -> None:
    """The README's main job: 2-4 experiments, durations shortened, under 10 minutes (timed in the lab test)."""
    plan = plans.load("quick")
    assert 2 <= len(plan.experiments) <= 4
    assert plan.scaling is None
    assert plan.load.baseline_s <= 60


def test_defaults_are_merged_key_by_key_and_the_experiment_wins() -> None:
    plan = plans.parse(minimal(
        defaults={"max_time_to_recover_s": 20, "client": {"max_error_ratio": 0.02, "max_p99_s": 3}},
        experiments=[{"experiment": "poison-message"},
                     {"experiment": "payments-down", "client": {"max_error_ratio": 0.5}, "max_time_to_recover_s": 9}]))
    first, second = plan.experiments
    assert first.max_time_to_recover_s == 20 and first.client.max_error_ratio == 0.02 and first.client.max_p99_s == 3
    assert second.max_time_to_recover_s == 9
    assert second.client.max_error_ratio == 0.5 and second.client.max_p99_s == 3  # the default's other key stays
    assert first.name == "poison-message"  # from the file name


def test_every_mistake_is_listed_with_where_it_is() -> None:
    data = minimal(
        lab={"replicas": {"payment": 3}},
        load={"scenario": "nope"},
        experiments=[
            {"experiment": "no-such-experiment"},
            {"experiment": "payments-down", "vars": {"outage_s": 3}, "fault_end": "start-paymnts",
             "alerts": [{"name": "ServiceDwn", "max_time_to_detect_s": 10}]},
        ])
    with pytest.raises(plans.PlanError) as caught:
        plans.parse(data, "bad.yaml")
    text = str(caught.value)
    for expected in ("lab.replicas.payment: not a service", "load: unknown scenario 'nope'",
                     "no experiment 'no-such-experiment'",
                     "experiments.payments-down.vars.outage_s: the experiment has no such configuration key",
                     "experiments.payments-down.fault_end: no method activity 'start-paymnts'",
                     "experiments.payments-down.alerts.ServiceDwn: no alert rule 'ServiceDwn' "
                     "(did you mean 'ServiceDown'?)"):
        assert expected in text, text


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"experiments": []}, "experiments: List should have at least 1 item"),
    ({"experiments": [{"experiment": "poison-message"}, {"experiment": "poison-message"}]}, "must be unique"),
    ({"experiments": [{"experiment": "poison-message", "alerts": [{"name": "DeadLetterQueueNotEmpty"}]}]},
     "max_time_to_detect_s: Field required"),
    ({"experiments": [{"experiment": "poison-message", "steady": {"window": "ten seconds"}}]}, "not a duration"),
    ({"experiments": [{"experiment": "poison-message", "client": {"max_error_ratio": 2}}]},
     "less than or equal to 1"),
])
def test_schema_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(plans.PlanError, match="not valid") as caught:
        plans.parse(minimal(**change))
    assert message in str(caught.value)


def test_the_cli_refuses_a_bad_plan_with_exit_code_2_and_checks_a_good_one(chaoslab_cli: Cli,
                                                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(minimal(experiments=[{"experiment": "poison-message", "vars": {"x": 1}}])))
    done = chaoslab_cli("gameday", "--plan", bad, "--state-dir", tmp_path / "no-lab")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "vars.x: the experiment has no such configuration key" in done.stderr
    assert not (tmp_path / "no-lab").exists()  # nothing was started
    missing = chaoslab_cli("gameday", "--plan", tmp_path / "missing.yaml")
    assert missing.returncode == 2 and "no plan" in missing.stderr
    good = chaoslab_cli("gameday", "--plan", "full", "--check")
    assert good.returncode == 0, good.stderr
    assert "plan full" in good.stdout and "payments-latency" in good.stdout


def test_alert_labels_the_catalogue_cannot_give_are_refused() -> None:
    alerts = [{"name": "ServiceDown", "labels": {"service": "paymnets"}, "max_time_to_detect_s": 10},
              {"name": "CircuitBreakerOpen", "labels": {"upstrem": "payments"}, "max_time_to_detect_s": 10},
              {"name": "ServiceDown", "labels": {"service": "payments", "job": "payments"},
               "max_time_to_detect_s": 10}]
    with pytest.raises(plans.PlanError) as caught:
        plans.parse(minimal(experiments=[{"experiment": "payments-down", "alerts": alerts}]), "labels.yaml")
    text = str(caught.value)
    assert "alerts.ServiceDown: label service='paymnets': ServiceDown has service one of auth, gateway" in text
    assert "alerts.CircuitBreakerOpen: label 'upstrem': CircuitBreakerOpen never carries it" in text
    assert "'job'" not in text, "a label the rule does carry was refused"


def test_the_catalogues_labels_cover_every_alert_promtool_expects() -> None:
    """The labels a plan may expect are read from the rules; promtool's tests (alerts/tests) fire the real rules,
    and every label they expect on an alert must be one the catalogue says it can carry."""
    from chaoslab.lab.paths import repo_root
    from chaoslab.observability.alerts import alert_labels

    catalogue, checked = alert_labels(), 0
    for path in (repo_root() / "alerts" / "tests").glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    name = case["alertname"]
                    assert set(alert.get("exp_labels", {})) <= set(catalogue[name]), (path.name, name, alert)
                    checked += 1
    assert checked > 10


def test_experiment_files_are_found_from_the_plans_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslab.chaos import experiments

    folder = tmp_path / "mine"
    folder.mkdir()
    source = experiments.resolve("poison-message")
    (folder / "my-poison.yaml").write_text(yaml.safe_dump(yaml.safe_load(source.read_text())))
    (folder / "plan.yaml").write_text(yaml.safe_dump(minimal(experiments=[{"experiment": "my-poison.yaml"}])))
    monkeypatch.chdir(tmp_path)  # not the plan's folder
    plan = plans.load(str(folder / "plan.yaml"))
    assert plan.experiments[0].experiment == str(folder / "my-poison.yaml")
    assert plan.experiments[0].name == "my-poison"
    (folder / "plan.yaml").write_text(yaml.safe_dump(minimal(experiments=[{"experiment": "missing.yaml"}])))
    with pytest.raises(plans.PlanError, match=f"no experiment 'missing.yaml': no file {folder / 'missing.yaml'}"):
        plans.load(str(folder / "plan.yaml"))


@pytest.mark.parametrize(("name", "text", "where"), [
    ("plan.yaml", "name: x\nexperiments:\n  - experiment: poison-message\n   bad: indent\n", "plan.yaml:4:"),
    ("plan.json", '{"name": "x",\n "experiments": [}', "plan.json:2:18: not valid JSON"),
])
def test_a_plan_that_does_not_parse_names_its_file_and_line(tmp_path: Path, name: str, text: str,
                                                           where: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(plans.PlanError) as caught:
        plans.load(str(tmp_path / name))
    assert str(caught.value).startswith(str(tmp_path / where)), caught.value


def test_a_json_plan_is_read_like_a_yaml_one(tmp_path: Path) -> None:
    import json

    (tmp_path / "plan.json").write_text(json.dumps(minimal()))
    assert plans.load(str(tmp_path / "plan.json")).experiments[0].name == "poison-message"
