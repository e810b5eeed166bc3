"""The lab's port plan, spec and rendered configs, checked by the real parsers (supervisor's own,
promtool, amtool): no lab runs here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from chaoslab.errors import LabError
from chaoslab.lab.binaries import INSTALL_HINT, find_binaries, rabbitmq_scripts
from chaoslab.lab.ports import MAX_REPLICAS, SERVICES, SPAN, PortPlan
from chaoslab.lab.preflight import check_database_template
from chaoslab.lab.programs import LAB_MARKER, all_programs, service_env
from chaoslab.lab.render import (
    alertmanager_yml,
    minimal_alertmanager_yml,
    prometheus_config,
    prometheus_yml,
    rabbitmq_conf,
    render_all,
    service_targets,
)
from chaoslab.lab.spec import LabSpec, existing_secrets, load_spec, parse_replicas

pytestmark = pytest.mark.quick

# With CI=true setup has installed them: a missing binary must fail there, not skip.
needs_stack = pytest.mark.skipif(os.environ.get("CI") != "true"
                                 and (shutil.which("promtool") is None or rabbitmq_scripts() is None),
                                 reason="the Debian packages prometheus and rabbitmq-server are not installed")


def test_the_port_plan_is_the_one_in_the_design() -> None:
    plan = PortPlan(18000)
    assert [plan.service_port(s) for s in SERVICES] == [18000, 18001, 18002, 18003, 18004, 18005]
    assert (plan.amqp, plan.rabbitmq_dist, plan.rabbitmq_metrics) == (18010, 18011, 18012)
    assert (plan.prometheus, plan.alertmanager, plan.webhook, plan.locust) == (18020, 18021, 18022, 18030)
    assert plan.admin_port("orders", 1) == 18160  # the registry example of docs/design.md
    assert plan.admin_port("gateway", 2) == 18101
    highest = plan.admin_port("notifications", MAX_REPLICAS)
    assert highest == 18219 and highest < 18000 + SPAN
    with pytest.raises(ValueError):
        plan.admin_port("orders", MAX_REPLICAS + 1)


def test_no_two_ports_of_a_full_plan_collide() -> None:
    ports = [p for p, _ in PortPlan(20000).all_ports(dict.fromkeys(SERVICES, MAX_REPLICAS))]
    assert len(ports) == len(set(ports))
    assert all(20000 <= p < 20000 + SPAN for p in ports)


def test_replica_settings_parse_and_fail_clearly() -> None:
    assert parse_replicas([]) == dict.fromkeys(SERVICES, 1)
    got = parse_replicas(["orders=2,payments=3", "gateway=0"])
    assert got["orders"] == 2 and got["payments"] == 3 and got["gateway"] == 0 and got["auth"] == 1
    assert parse_replicas(["orders=4"], base={"orders": 1, "users": 2})["users"] == 2
    for bad, words in (("order=2", "SVC=N"), ("orders", "SVC=N"), ("orders=x", "not a number"),
                       ("orders=21", "0..20"), ("orders=-1", "0..20")):
        with pytest.raises(LabError, match=words):
            parse_replicas([bad])


def test_the_spec_keeps_its_secrets(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path / "state", 20000, parse_replicas(["orders=2"]))
    spec.save()
    again = load_spec(tmp_path / "state")
    assert again == spec
    assert existing_secrets(tmp_path / "state") == {"admin_token": spec.admin_token,
                                                    "admin_password": spec.admin_password}
    assert existing_secrets(tmp_path / "new") == {}
    other = LabSpec(tmp_path / "other", 20000)
    assert len(spec.admin_password) >= 24 and other.admin_password != spec.admin_password  # each lab its own
    assert oct(spec.paths.lab_json.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(LabError, match="no lab in"):
        load_spec(tmp_path / "elsewhere")


def test_service_environment_follows_the_contract(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path, 20000, tls=False)
    env = service_env(spec, "orders", 2)
    assert env["HTTP_PORT"] == "20003" and env["ADMIN_PORT"] == "20161" and env["REPLICA_ID"] == "orders-2"
    assert env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:20010/"
    assert env["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path}/data/orders.db"
    assert env["AUTH_URL"] == "http://127.0.0.1:20001" and env["USERS_URL"] == "http://127.0.0.1:20002"
    assert env["PAYMENTS_GRPC_ADDR"] == "127.0.0.1:20004" and env["SPANS_DIR"] == f"{tmp_path}/spans"
    assert env["ADMIN_TOKEN"] == spec.admin_token
    assert not {"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"} & set(env)
    # mutual TLS (the default): https between services, AMQP over TLS with the certificate as login, and the
    # replica's own certificate, which no --env override can replace
    secure = LabSpec(tmp_path, 20000, env={"orders": {"TLS_CERT_FILE": "/elsewhere.pem"}})
    env = service_env(secure, "orders", 2)
    assert env["AMQP_URL"] == "amqps://127.0.0.1:20010/?auth=external"
    assert env["AUTH_URL"] == "https://127.0.0.1:20001" and env["USERS_URL"] == "https://127.0.0.1:20002"
    assert env["PAYMENTS_GRPC_ADDR"] == "127.0.0.1:20004"
    assert (env["TLS_CERT_FILE"], env["TLS_KEY_FILE"], env["TLS_CA_FILE"]) == (
        f"{tmp_path}/pki/orders-2/cert.pem", f"{tmp_path}/pki/orders-2/key.pem", f"{tmp_path}/pki/ca.pem")
    payments = service_env(spec, "payments", 1)
    assert payments["GRPC_PORT"] == "20004" and "HTTP_PORT" not in payments
    templated = LabSpec(tmp_path, 20000, database_url_template="postgresql+asyncpg://pg@127.0.0.1:5432/lab_{service}")
    assert service_env(templated, "users", 1)["DATABASE_URL"].endswith("/lab_users")


def test_database_templates_need_the_service_placeholder() -> None:
    check_database_template(None)
    check_database_template("postgresql+asyncpg://postgres@127.0.0.1:5432/chaoslab_{service}")
    with pytest.raises(LabError, match="no \\{service\\} placeholder"):
        check_database_template("postgresql+asyncpg://postgres@127.0.0.1:5432/chaoslab")
    with pytest.raises(LabError, match="bad --database-url-template"):
        check_database_template("sqlite:///{db}.db")


@needs_stack
def test_supervisord_reads_the_rendered_config(tmp_path: Path) -> None:
    """supervisor's own parser, on a database URL that holds % and a comma."""
    state = tmp_path / "state"
    spec = LabSpec(state, 20000, parse_replicas(["orders=2", "payments=0"]),
                   database_url_template="postgresql+asyncpg://u:p%40ss,w@127.0.0.1:5432/db_{service}")
    programs = all_programs(spec, find_binaries())
    render_all(spec, programs)
    options = ServerOptions()
    options.realize(args=["-c", str(spec.paths.supervisord_conf)])
    parsed = {p.name: p for g in options.process_group_configs for p in g.process_configs}
    assert set(parsed) == {p.name for p in programs}
    assert "payments-1" not in parsed and {"orders-1", "orders-2", "rabbitmq", "webhook"} <= set(parsed)
    orders2 = parsed["orders-2"]
    assert orders2.environment["DATABASE_URL"] == "postgresql+asyncpg://u:p%40ss,w@127.0.0.1:5432/db_orders"
    assert orders2.environment["ADMIN_PORT"] == "20161"
    assert orders2.command == f"{sys.executable} -m services.orders"
    assert orders2.stdout_logfile == str(state / "logs" / "orders-2.log")
    assert orders2.autorestart is RestartUnconditionally
    assert orders2.stopasgroup and orders2.killasgroup and orders2.stopsignal == 15
    rabbit = parsed["rabbitmq"]
    assert rabbit.environment["RABBITMQ_NODENAME"] == "chaoslab-20000@localhost"
    assert rabbit.environment["HOME"] == str(state / "rabbitmq" / "home")
    assert rabbit.environment["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == "-kernel inet_dist_use_interface {127,0,0,1}"
    assert rabbit.priority < parsed["prometheus"].priority < orders2.priority
    assert "--cluster.listen-address=" in parsed["alertmanager"].command
    assert options.server_configs[0]["file"] == str(spec.paths.socket)
    assert all(p.environment[LAB_MARKER] == str(state) for p in parsed.values())
    with pytest.raises(LabError, match="may not contain '%'"):
        render_all(LabSpec(tmp_path / "st%te", 20000), programs)


@needs_stack
def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path / "state", 20000, parse_replicas(["orders=3"]))
    render_all(spec, all_programs(spec, find_binaries()))
    spec.paths.prometheus_yml.write_text(prometheus_yml(spec, None))
    done = subprocess.run(["promtool", "check", "config", str(spec.paths.prometheus_yml)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    config = prometheus_config(spec, None)
    assert config["global"] == {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"}
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["127.0.0.1:20012"]
    assert jobs["locust"]["static_configs"][0]["targets"] == ["127.0.0.1:20030"]
    assert {"prometheus", "alertmanager", "services"} <= set(jobs)
    assert "rule_files" not in config
    rules = tmp_path / "native.rules.yml"
    assert prometheus_config(spec, rules)["rule_files"] == [str(rules)]


def test_file_sd_targets_name_job_service_and_replica(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path, 20000, parse_replicas(["orders=3", "users=0"]))
    render_all(spec, [])
    on_disk = json.loads((spec.paths.targets / "orders.json").read_text())
    assert on_disk == service_targets(spec, "orders")
    assert on_disk[2] == {"targets": ["127.0.0.1:20162"],
                          "labels": {"job": "orders", "service": "orders", "replica": "orders-3"}}
    assert json.loads((spec.paths.targets / "users.json").read_text()) == []


@needs_stack
def test_amtool_accepts_the_alertmanager_configs(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    for name, text in (("minimal.yml", minimal_alertmanager_yml("http://127.0.0.1:20022")),
                       ("lab.yml", alertmanager_yml("http://127.0.0.1:20022"))):
        assert "http://127.0.0.1:20022" in text
        path = tmp_path / name
        path.write_text(text)
        done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_rabbitmq_is_private_and_shows_every_queue(tmp_path: Path) -> None:
    text = rabbitmq_conf(LabSpec(tmp_path, 20000, tls=False))
    assert "listeners.tcp.local = 127.0.0.1:20010" in text
    assert "prometheus.tcp.port = 20012" in text and "prometheus.tcp.ip = 127.0.0.1" in text
    assert "prometheus.return_per_object_metrics = true" in text
    # mutual TLS: no plain listener, only TLS with a client certificate, and the certificate is the login
    text = rabbitmq_conf(LabSpec(tmp_path, 20000))
    assert "listeners.tcp = none" in text and "listeners.ssl.local = 127.0.0.1:20010" in text
    assert "ssl_options.fail_if_no_peer_cert = true" in text and "auth_mechanisms.1 = EXTERNAL" in text
    assert "ssl_cert_login_san_type = uri" in text and "prometheus.tcp.port = 20012" in text
    assert "listeners.tcp.local" not in text and "loopback_users" not in text


@needs_stack
def test_binaries_follow_path_and_the_rabbitmq_rule(tmp_path: Path) -> None:
    found = find_binaries()
    # Debian: /usr/sbin/rabbitmq-server is the su-wrapper; the lab runs the foreground script beside it
    assert found.rabbitmq_server.resolve().name == "rabbitmq-server"
    assert found.rabbitmqctl.parent == found.rabbitmq_server.parent
    # a PATH without rabbitmq-server: the error names it and gives the install command
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if d and not (Path(d) / "rabbitmq-server").exists())
    with pytest.raises(LabError) as caught:
        find_binaries(path)
    assert "rabbitmq-server" in caught.value.message and "prometheus " not in caught.value.message
    assert caught.value.hint == INSTALL_HINT and "apt-get install -y" in INSTALL_HINT
    # a PATH with nothing at all: all three are named
    with pytest.raises(LabError) as caught:
        find_binaries(str(tmp_path))
    for name in ("prometheus", "prometheus-alertmanager", "rabbitmq-server"):
        assert name in caught.value.message


def test_mutual_tls_is_a_choice_of_the_lab_kept_in_lab_json(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path, 20000, tls=False, cert_ttl_s=120)
    spec.save()
    again = load_spec(tmp_path)
    assert (again.tls, again.cert_ttl_s) == (False, 120)
    assert again.amqp_url == "amqp://guest:guest@127.0.0.1:20010/"
    assert again.service_address("users") == "http://127.0.0.1:20002"
    secure = LabSpec(tmp_path, 20000)
    assert secure.tls and secure.cert_ttl_s == 3600
    assert secure.service_address("users") == "https://127.0.0.1:20002"
    assert secure.service_address("gateway") == "http://127.0.0.1:20000"  # the edge stays plain
    assert secure.service_address("payments") == "127.0.0.1:20004"
    with pytest.raises(LabError, match="lifetime of 5 s is out of range"):
        LabSpec(tmp_path, 20000, cert_ttl_s=5)
    done = subprocess.run([sys.executable, "-m", "chaoslab.cli", "up", "--state-dir", str(tmp_path / "x"),
                           "--tls", "maybe"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--tls 'maybe': choose on or off" in done.stdout + done.stderr
    assert not (tmp_path / "x").exists()  # refused before anything was made
