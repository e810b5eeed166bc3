"""docker-compose.observability.yml, checked offline: docker-compose's own validation, the compose-spec JSON
schema, and cross-checks against the repository (files, ports, environment names, Prometheus targets)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import jsonschema
import pytest
from deploy_envnames import read_by
from deploy_support import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    ENV_EXAMPLE,
    REPO,
    SERVICES,
    app_services,
    bind_mounts,
    compose_cmd,
    compose_raw,
    compose_resolved,
    load_yaml,
    run,
    service_module,
)

pytestmark = pytest.mark.quick

# Ports the third-party images listen on inside their containers (from their images' documentation).
IMAGE_PORTS = {
    "postgres": {5432},
    "rabbitmq": {5672, 15672, 15692},
    "prometheus": {9090},
    "alertmanager": {9093},
    "grafana": {3000},
    "loki": {3100, 9096},
    "jaeger": {4317, 4318, 13133, 16685, 16686},
    "locust-master": {8089, 5557, 9646, 9647},  # 9647: the exporter of a command-line run exec'ed in it
    "chaos-runner": {9095},
}
# Host paths that are the container runtime's, not the repository's.
RUNTIME_HOST_PATHS = {"/var/run/docker.sock"}


def _listen_ports(name: str, service: dict) -> set[int]:
    if service_module(service):
        env = service["environment"]
        ports = {int(env["HTTP_PORT"]), int(env["ADMIN_PORT"])}
        return ports | ({int(env["GRPC_PORT"])} if "GRPC_PORT" in env else set())
    return IMAGE_PORTS.get(name, set())


def test_docker_compose_validates_it() -> None:
    run(compose_cmd("config", "-q"))


def test_secrets_are_required_from_the_env_file() -> None:
    """Without compose/.env every secret is missing: compose must refuse to start, not fall back to a default."""
    done = run(["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"], check=False)
    assert done.returncode != 0
    assert "compose/.env" in done.stderr


@pytest.mark.parametrize("which", ["as written", "as resolved by docker-compose"])
def test_compose_spec_schema(which: str) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    document = compose_raw() if which == "as written" else compose_resolved()
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_all_six_services_run_from_the_one_dockerfile() -> None:
    services = app_services()
    assert sorted(service_module(s) for s in services.values()) == sorted(SERVICES)
    for name, svc in services.items():
        assert name == service_module(svc), "compose service name = service name (DNS, Prometheus jobs)"
        assert svc["build"]["dockerfile"] == "services/Dockerfile" and svc["build"]["target"] == "service"


def test_build_contexts_and_mounted_files_exist() -> None:
    for name, svc in compose_resolved()["services"].items():
        build = svc.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: dockerfile"
    for name, svc in compose_raw()["services"].items():
        for source, _target in bind_mounts(svc):
            if source in RUNTIME_HOST_PATHS:
                continue
            assert source.startswith("./"), f"{name}: {source} must be a repository path"
            assert (REPO / source).exists(), f"{name}: mounted {source} does not exist"


def test_named_volumes_are_declared_and_images_pinned() -> None:
    raw = compose_raw()
    declared = set(raw.get("volumes", {}))
    for name, svc in raw["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not a declared named volume"
        image = compose_resolved()["services"][name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image} is not pinned"
        if "build" not in svc:
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} should pin a version, not a moving tag"


def test_host_ports_do_not_clash_and_scaled_services_have_none() -> None:
    seen: dict[tuple[str, int], str] = {}
    for name, svc in compose_resolved()["services"].items():
        assert "container_name" not in svc, f"{name}: container_name prevents --scale"
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}:{port['target']}"
            ip, host_port, _container = spec.rsplit(":", 2) if spec.count(":") == 2 else ("", *spec.split(":"))
            assert ip == "127.0.0.1", f"{name}: {spec} must bind to 127.0.0.1 only"
            key = (ip, int(host_port))
            assert key not in seen, f"host port {host_port} used by {seen.get(key)} and {name}"
            seen[key] = name
    # payments is the service scaled in the docs; a fixed host port would make its second replica fail.
    assert "ports" not in compose_resolved()["services"]["payments"]


def test_healthchecks_and_start_order() -> None:
    services = compose_resolved()["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        assert "curl" not in json.dumps(check["test"]) or name not in app_services(), f"{name}: curl"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in {"service_healthy", "service_started"}, f"{name} -> {dep}"
    app = app_services()
    for name, svc in app.items():
        deps = svc.get("depends_on") or {}
        for needed in ("postgres", "rabbitmq", "auth", "users", "payments", "orders", "notifications"):
            if needed in deps:
                assert deps[needed]["condition"] == "service_healthy", f"{name} -> {needed}"


def test_service_environment_names_are_read_by_the_service() -> None:
    for name, svc in app_services().items():
        unknown = set(svc["environment"]) - read_by(name)
        assert not unknown, f"{name} sets {sorted(unknown)}, which neither its code nor docs/design.md reads"


def test_service_environment_follows_the_container_contract() -> None:
    services = compose_resolved()["services"]
    for name, svc in app_services().items():
        env = svc["environment"]
        assert (env["HTTP_HOST"], env["HTTP_PORT"], env["ADMIN_PORT"]) == ("0.0.0.0", "8080", "9090"), name
        assert env["AUTH_URL"] == "http://auth:8080", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
        if name != "gateway":  # the gateway keeps no state (Service(..., uses_db=False))
            db = urlsplit(env["DATABASE_URL"])
            assert db.scheme == "postgresql+asyncpg", name
            assert (db.username, db.hostname, db.port, db.path) == (name, "postgres", 5432, f"/{name}"), name
        for key, value in env.items():
            if key.endswith("_URL") and value.startswith("http"):
                url = urlsplit(value)
                assert url.hostname in services, f"{name}: {key} points at {url.hostname}"
                assert url.port in _listen_ports(url.hostname, services[url.hostname]), f"{name}: {key}"
            if key == "AMQP_URL":
                url = urlsplit(value)
                assert (url.hostname, url.port) == ("rabbitmq", 5672), name
    assert services["payments"]["environment"]["GRPC_PORT"] == "50051"
    assert services["orders"]["environment"]["PAYMENTS_GRPC_ADDR"] == "payments:50051"


def test_no_secret_is_written_in_the_file() -> None:
    """Secrets come from the env file: every password-like value is a required ${VAR:?...} reference."""
    secretish = re.compile(r"(PASSWORD|PASS|TOKEN|SECRET|BOOTSTRAP_ADMIN)$")
    for name, svc in compose_raw()["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if secretish.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), f"{name}: {key} must be ${{VAR:?}}"
            if key in ("DATABASE_URL", "AMQP_URL"):
                # Stand each ${...} in for a token first: their messages contain ':' and '/'.
                refs = re.findall(r"\$\{[^}]*\}", str(value))
                masked = str(value)
                for i, ref in enumerate(refs):
                    masked = masked.replace(ref, f"REF{i}", 1)
                password = urlsplit(masked).password or ""
                assert re.fullmatch(r"REF\d+", password), f"{name}: {key} embeds a password"
                assert ":?" in refs[int(password[3:])], f"{name}: {key} password must be required (:?)"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#") and "change-me" in line:
            assert line.split("=", 1)[1] not in text, f"example secret {line} copied into the compose file"


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_env_example_defines_every_variable_the_file_uses() -> None:
    used = {name for text in _strings(compose_raw()) for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text)}
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= example, f"compose/.env.example lacks {sorted(used - example)}"
    assert (REPO / "compose" / ".gitignore").read_text().count(".env") >= 1


def test_prometheus_targets_are_compose_services_and_ports() -> None:
    services = compose_resolved()["services"]
    config = load_yaml(REPO / "compose" / "prometheus" / "prometheus.yml")
    scraped_apps = set()
    for job in config["scrape_configs"]:
        targets: list[tuple[str, int]] = []
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", f"{job['job_name']}: per-replica discovery needs A records"
            targets += [(n, sd["port"]) for n in sd["names"]]
        for sc in job.get("static_configs", []):
            targets += [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sc["targets"]]
        for host, port in targets:
            host = "prometheus" if host == "localhost" and job["job_name"] == "prometheus" else host
            assert host in services, f"job {job['job_name']}: {host} is not a compose service"
            assert port in _listen_ports(host, services[host]), f"job {job['job_name']}: {host}:{port}"
            if service_module(services[host]):
                assert job["job_name"] == host and job.get("dns_sd_configs"), f"{host}: job = service, DNS-SD"
                assert port == int(services[host]["environment"]["ADMIN_PORT"])
                scraped_apps.add(host)
    assert scraped_apps == set(SERVICES), f"not scraped: {set(SERVICES) - scraped_apps}"
    for am in config["alerting"]["alertmanagers"]:
        for target in am["static_configs"][0]["targets"]:
            host, port = target.rsplit(":", 1)
            assert host in services and int(port) in _listen_ports(host, services[host])


def test_a_stopping_replica_drains_within_its_grace_period() -> None:
    """Every service replica answers not ready for SHUTDOWN_DELAY_S before its port closes (so what routes by
    readiness stops first), and Docker's stop_grace_period covers that delay plus the kit's own drains (the public
    port's and the consumer's), or Docker SIGKILLs a replica in the middle of its in-flight requests."""
    from services.kit.app import DRAIN_TIMEOUT_S as PUBLIC_DRAIN_S
    from services.kit.consumer import DRAIN_TIMEOUT_S as CONSUMER_DRAIN_S

    for name, svc in app_services().items():
        delay = float(svc["environment"].get("SHUTDOWN_DELAY_S", 0))
        assert delay >= 3, f"{name}: SHUTDOWN_DELAY_S {delay} leaves no time for readiness to be seen"
        grace = svc.get("stop_grace_period", "10s")
        grace_s = float(re.fullmatch(r"(\d+)s", str(grace)).group(1))  # type: ignore[union-attr]
        assert grace_s >= delay + PUBLIC_DRAIN_S + CONSUMER_DRAIN_S, f"{name}: stop_grace_period {grace}"
