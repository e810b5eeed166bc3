"""The chaos extension aimed at a compose stack (CHAOSLAB_TARGET=compose), without a Docker engine: the registry
found by DNS, the faults that need container control refused clearly, and the experiments tagged "compose"
using only what the compose runner can do, with bounds files that name real configuration keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos import actions
from chaoslab.chaos.lab import Lab, select_replicas, target
from chaoslab.errors import LabError
from chaoslab.lab.compose import compose_registry, dns_addresses
from chaoslab.lab.ports import SERVICES

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parents[2]
CHAOS = REPO / "chaos"
# What the compose runner can do: admin-API faults, kill through /admin/crash, the broker over AMQP, probes.
COMPOSE_ACTIONS = {"kill_replica", "kill_service", "inject_latency", "inject_errors", "inject_aborts",
                   "inject_cpu_burn", "clear_faults", "publish_poison_message", "purge_queue", "hold", "restore_lab"}
ENV = {"ADMIN_TOKEN": "t0ken", "AMQP_URL": "amqp://u:p@rabbitmq:5672/"}


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        assert port == 9090
        return table.get(host, [])
    return resolve


def test_registry_has_one_replica_per_address_in_address_order() -> None:
    reg = compose_registry(ENV, fake_dns({"payments": ["172.18.0.12", "172.18.0.9", "172.18.0.10"],
                                          "orders": ["172.18.0.5"]}))
    assert reg["mode"] == "compose" and reg["admin_token"] == "t0ken"
    assert set(reg["services"]) == set(SERVICES)
    payments = reg["services"]["payments"]
    assert [r["name"] for r in payments["replicas"]] == ["payments-1", "payments-2", "payments-3"]
    assert [r["admin_url"] for r in payments["replicas"]] == [
        "http://172.18.0.9:9090", "http://172.18.0.10:9090", "http://172.18.0.12:9090"]  # numeric, not text order
    assert payments["url"] is None and payments["grpc_addr"] == "payments:50051"
    assert reg["services"]["orders"]["url"] == "http://orders:8080"
    assert reg["services"]["auth"]["replicas"] == []  # resolves to nothing: stopped
    assert reg["gateway_url"] == "http://gateway:8080"
    assert reg["prometheus_url"] == "http://prometheus:9090"
    assert reg["broker"]["amqp_url"] == ENV["AMQP_URL"]
    assert select_replicas(reg, "payments", 2)[0]["admin_url"] == "http://172.18.0.10:9090"


def test_registry_settings_come_from_the_environment() -> None:
    env = {**ENV, "CHAOSLAB_ADMIN_PORT": "9191", "CHAOSLAB_HTTP_PORT": "8181", "PROMETHEUS_URL": "http://p:1"}
    reg = compose_registry(env, lambda host, port: ["10.0.0.2"] if port == 9191 else [])
    assert reg["services"]["users"]["replicas"][0]["admin_url"] == "http://10.0.0.2:9191"
    assert reg["services"]["users"]["url"] == "http://users:8181"
    assert reg["prometheus_url"] == "http://p:1"


@pytest.mark.parametrize(("env", "message"), [
    ({"AMQP_URL": "amqp://x"}, "ADMIN_TOKEN is not set"),
    ({**ENV, "CHAOSLAB_ADMIN_PORT": "nine"}, "CHAOSLAB_ADMIN_PORT must be a port number"),
    ({**ENV, "CHAOSLAB_HTTP_PORT": "70000"}, "CHAOSLAB_HTTP_PORT must be a port number"),
])
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(LabError, match=message):
        compose_registry(env, fake_dns({}))


def test_dns_gives_every_ipv4_address_and_nothing_for_an_unknown_name() -> None:
    assert dns_addresses("localhost", 9090) == ["127.0.0.1"]
    assert dns_addresses("no-such-service.invalid", 9090) == []


def test_the_target_comes_from_configuration_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOSLAB_TARGET", raising=False)
    assert target() == "native"
    monkeypatch.setenv("CHAOSLAB_TARGET", "compose")
    assert target() == "compose"
    assert target({"chaoslab_target": "native"}) == "native"
    with pytest.raises(ActivityFailed, match="unknown chaos target 'docker'"):
        target({"chaoslab_target": "docker"})
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("chaoslab.lab.compose.dns_addresses", fake_dns({"gateway": ["10.1.0.3"]}))
    reg = Lab.of().registry
    assert reg["mode"] == "compose"
    assert reg["services"]["gateway"]["replicas"][0]["admin_url"] == "http://10.1.0.3:9090"


@pytest.mark.parametrize(("action", "kwargs"), [
    (actions.stop_service, {"service": "payments"}),
    (actions.start_service, {"service": "payments"}),
    (actions.pause_replica, {"service": "payments"}),
    (actions.resume_replicas, {}),
    (actions.stop_broker, {}),
    (actions.start_broker, {}),
])
def test_faults_that_need_container_control_are_refused_clearly(action: Any, kwargs: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("chaoslab.lab.compose.dns_addresses", fake_dns({"payments": ["10.1.0.4"]}))
    with pytest.raises(ActivityFailed, match="needs container control.*natively.*Kubernetes"):
        action(**kwargs, configuration={"chaoslab_target": "compose"})


def _experiments() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(CHAOS.glob("*.json"))]


def _funcs(node: Any, module: str) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("module") == module and "func" in node:
            found.add(node["func"])
        for value in node.values():
            found |= _funcs(value, module)
    elif isinstance(node, list):
        for value in node:
            found |= _funcs(value, module)
    return found


def test_compose_experiments_use_only_what_the_compose_runner_can_do() -> None:
    tagged = [(name, e) for name, e in _experiments() if "compose" in e["tags"]]
    assert {name for name, _ in tagged} == {"kill-payments-replica", "payments-latency", "cpu-burn-orders",
                                             "poison-message"}
    for name, experiment in tagged:
        used = _funcs(experiment, "chaoslab.chaos.actions")
        assert used <= COMPOSE_ACTIONS, (name, used - COMPOSE_ACTIONS)
    for name, experiment in _experiments():
        if "compose" not in experiment["tags"]:  # the others need process control: a stop, a pause
            assert not _funcs(experiment, "chaoslab.chaos.actions") <= COMPOSE_ACTIONS, name


def test_every_experiment_reads_its_target_from_the_environment() -> None:
    for name, experiment in _experiments():
        assert experiment["configuration"]["chaoslab_target"] == {
            "type": "env", "key": "CHAOSLAB_TARGET", "default": "native"}, name


def test_compose_bounds_files_only_name_keys_their_experiment_has() -> None:
    """Chaos Toolkit drops a --var-file key the experiment does not declare, silently: a misspelt bound would
    leave the native one in place without a word."""
    experiments = dict(_experiments())
    files = sorted((CHAOS / "compose").glob("*.yaml"))
    assert {f.stem for f in files} == {n for n, e in experiments.items() if "compose" in e["tags"]}
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert set(data) == {"configuration"}, path.name
        declared = experiments[path.stem]["configuration"]
        unknown = set(data["configuration"]) - set(declared)
        assert not unknown, (path.name, unknown)
        for key, value in data["configuration"].items():
            native = declared[key]
            assert type(value) is type(native), (path.name, key, value, native)  # noqa: E721 - same JSON type
