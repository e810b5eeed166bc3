"""The configuration files the compose stack mounts, checked with the real tools where they exist here
(promtool, amtool, a real PostgreSQL for the init script) and against the keys documented for the pinned
image versions where no binary can be installed (Loki, Alloy, Jaeger, Grafana)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_alloy import parse as parse_alloy
from deploy_support import ENV_EXAMPLE, compose_resolved, host_path_for, load_yaml, materialise_mounts, run, tool

pytestmark = pytest.mark.quick


def _port(url: str) -> int:
    return urlsplit(url if "://" in url else f"tcp://{url}").port


def _healthcheck_port(service: str) -> int:
    test = " ".join(compose_resolved()["services"][service]["healthcheck"]["test"])
    return int(re.search(r"127\.0\.0\.1:(\d+)", test).group(1))


def _published(service: str) -> set[int]:
    ports = compose_resolved()["services"][service].get("ports", [])
    return {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in ports}


# ----------------------------------------------------------------------------------- Prometheus, Alertmanager


def test_prometheus_config_passes_promtool_with_its_rule_files(tmp_path: Path) -> None:
    """promtool sees the container's /etc/prometheus, built from the compose mounts: the rule file must
    resolve from the config exactly as in the container, and the rules themselves must parse."""
    materialise_mounts("prometheus", tmp_path)
    config = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    done = run([tool("promtool"), "check", "config", str(config)])
    assert "SUCCESS" in done.stdout + done.stderr
    rule_files = load_yaml(config)["rule_files"]
    assert rule_files and all((config.parent / f).is_file() for f in rule_files)


def test_alertmanager_config_passes_amtool_and_its_webhook_is_a_compose_service(tmp_path: Path) -> None:
    materialise_mounts("alertmanager", tmp_path)
    config = tmp_path / "etc" / "alertmanager" / "alertmanager.yml"
    run([tool("amtool"), "check-config", str(config)])
    services = compose_resolved()["services"]
    hooks = [w["url"] for r in load_yaml(config).get("receivers", []) for w in r.get("webhook_configs", [])]
    assert hooks, "no webhook receiver: the chaos runner would never hear of an alert"
    for url in hooks:
        parts = urlsplit(url)
        assert parts.hostname in services, f"webhook {url}: not a compose service"
        assert (parts.hostname, parts.port, parts.path) == ("chaos-runner", 9095, "/alertmanager"), url


# ------------------------------------------------------------------------------------------------------ Loki
# Keys from the Loki 3.x configuration reference (grafana/loki docs/sources/shared/configuration.md, "Supported
# contents and default values of loki.yaml") and the image's own cmd/loki/loki-local-config.yaml; only the
# blocks this lab could plausibly touch are listed, so a misspelt or misplaced key fails.
LOKI_TOP = {
    "target", "auth_enabled", "server", "distributor", "querier", "query_scheduler", "frontend", "query_range",
    "ruler", "ingester_client", "ingester", "pattern_ingester", "index_gateway", "storage_config",
    "chunk_store_config", "schema_config", "compactor", "limits_config", "frontend_worker", "table_manager",
    "memberlist", "runtime_config", "tracing", "analytics", "common",
}
LOKI_SERVER = {"http_listen_address", "http_listen_port", "grpc_listen_address", "grpc_listen_port", "log_level",
               "log_format", "grpc_server_max_concurrent_streams"}
LOKI_COMMON = {"path_prefix", "storage", "persist_tokens", "replication_factor", "ring", "instance_interface_names",
               "instance_addr", "instance_enable_ipv6", "compactor_address", "compactor_grpc_address"}
LOKI_SCHEMA_ENTRY = {"from", "store", "object_store", "schema", "index", "chunks", "row_shards"}


def test_loki_config_is_a_single_binary_on_the_filesystem_with_schema_v13_tsdb() -> None:
    path = host_path_for("loki", "/etc/loki/loki.yml")
    config = load_yaml(path)
    assert set(config) <= LOKI_TOP, f"unknown: {set(config) - LOKI_TOP}"
    assert set(config["server"]) <= LOKI_SERVER and set(config["common"]) <= LOKI_COMMON
    assert config.get("target", "all") == "all" and config["auth_enabled"] is False
    assert set(config["common"]["storage"]) == {"filesystem"}
    assert set(config["common"]["storage"]["filesystem"]) <= {"chunks_directory", "rules_directory"}
    entries = config["schema_config"]["configs"]
    for entry in entries:
        assert set(entry) <= LOKI_SCHEMA_ENTRY and set(entry["index"]) <= {"prefix", "period", "tags"}
    latest = entries[-1]
    assert (latest["store"], latest["object_store"], latest["schema"]) == ("tsdb", "filesystem", "v13")
    assert latest["index"]["period"] == "24h"  # required by the tsdb store
    # Loki's data dir is the named volume, and its port is the one the healthcheck and Grafana use.
    volumes = compose_resolved()["services"]["loki"]["volumes"]
    assert any(str(v).split(":")[1] == config["common"]["path_prefix"] for v in volumes if ":" in str(v))
    assert config["server"]["http_listen_port"] == _healthcheck_port("loki") == 3100


# ----------------------------------------------------------------------------------------------------- Alloy
# Arguments and blocks per component, from the Alloy reference pages (grafana/alloy
# docs/sources/reference/components/...: discovery.docker.md, discovery.relabel.md, loki.source.docker.md,
# loki.process.md "stage.json"/"stage.labels", loki.write.md) and the shared rule-block page.
ALLOY_COMPONENTS: dict[str, tuple[set[str], set[str], set[str]]] = {  # (arguments, required, blocks)
    "discovery.docker": (
        {"host", "port", "host_networking_host", "match_first_network", "refresh_interval", "bearer_token",
         "bearer_token_file", "enable_http2", "follow_redirects", "http_headers", "no_proxy", "proxy_url",
         "proxy_connect_header", "proxy_from_environment"},
        {"host"}, {"filter", "authorization", "basic_auth", "oauth2", "tls_config"}),
    "discovery.relabel": ({"targets"}, {"targets"}, {"rule"}),
    "loki.source.docker": (
        {"host", "targets", "forward_to", "labels", "relabel_rules", "refresh_interval"},
        {"host", "targets", "forward_to"}, {"client"}),
    "loki.process": ({"forward_to"}, {"forward_to"}, {"stage.json", "stage.labels", "stage.regex",
                                                       "stage.timestamp", "stage.drop", "stage.static_labels"}),
    "loki.write": ({"external_labels", "max_streams"}, set(), {"endpoint", "wal"}),
}
ALLOY_BLOCKS = {
    "rule": {"source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action"},
    "stage.json": {"expressions", "source", "drop_malformed"},
    "stage.labels": {"values"},
    "endpoint": {"url", "name", "batch_size", "batch_wait", "remote_timeout", "headers", "tenant_id",
                 "min_backoff_period", "max_backoff_period", "max_backoff_retries", "retry_on_http_429"},
    "filter": {"name", "values"},
}


def test_alloy_config_uses_documented_components_and_reaches_loki() -> None:
    path = host_path_for("alloy", "/etc/alloy/config.alloy")
    blocks = parse_alloy(path.read_text(encoding="utf-8"))
    defined = {(b.name, b.label) for b in blocks}
    for block in blocks:
        assert block.name in ALLOY_COMPONENTS, f"undocumented component {block.name}"
        arguments, required, allowed_blocks = ALLOY_COMPONENTS[block.name]
        assert set(block.attributes) <= arguments, f"{block.name}: {set(block.attributes) - arguments}"
        assert required <= set(block.attributes), f"{block.name}: missing {required - set(block.attributes)}"
        for inner in block.blocks:
            assert inner.name in allowed_blocks, f"{block.name}: block {inner.name}"
            assert set(inner.attributes) <= ALLOY_BLOCKS[inner.name], f"{block.name} > {inner.name}"
        # Every reference to another component (name.label.export) points at one defined in the file.
        for expr in block.attributes.values():
            for ref in re.findall(r"\b((?:discovery|loki)\.[a-z_.]+)\b", expr):
                parts = ref.split(".")
                assert (".".join(parts[:-2]), parts[-2]) in defined, f"{block.name}: unknown {ref}"
    # The Docker host it reads is the socket compose mounts, and logs go to the compose Loki's push API.
    mounts = [str(v) for v in compose_resolved()["services"]["alloy"]["volumes"]]
    for block in blocks:
        if "host" in block.attributes:
            socket = block.attributes["host"].strip('"').removeprefix("unix://")
            assert any(m.split(":")[1] == socket for m in mounts), f"{socket} is not mounted"
    # docs/design.md: Loki streams carry `service` (Grafana's trace-to-logs link filters on it).
    rules = [r for b in blocks if b.name == "discovery.relabel" for r in b.blocks if r.name == "rule"]
    assert any(r.attributes.get("target_label") == '"service"' and "com_docker_compose_service"
               in r.attributes.get("source_labels", "") for r in rules), "streams lack the service label"
    (write,) = [b for b in blocks if b.name == "loki.write"]
    url = urlsplit(write.blocks[0].attributes["url"].strip('"'))
    assert (url.hostname, url.port, url.path) == ("loki", 3100, "/loki/api/v1/push")


# ---------------------------------------------------------------------------------------------------- Jaeger
# Jaeger v2 is configured as an OpenTelemetry Collector (jaegertracing/jaeger docs "Configuration", and
# cmd/jaeger/internal/all-in-one.yaml of the release): top-level sections, the Jaeger extensions and their keys.
JAEGER_TOP = {"receivers", "processors", "exporters", "connectors", "extensions", "service"}
JAEGER_EXTENSIONS = {
    "jaeger_storage": {"backends", "metric_backends"},
    "jaeger_query": {"storage", "base_path", "ui", "grpc", "http", "max_clock_skew_adjust", "enable_tracing"},
    "healthcheckv2": {"use_v2", "http", "grpc", "component_health"},
    "remote_sampling": {"file", "adaptive", "http", "grpc"},
    "expvar": {"endpoint"},
}
JAEGER_BACKENDS = {"memory", "badger", "cassandra", "elasticsearch", "opensearch", "grpc", "clickhouse"}


def test_jaeger_config_receives_otlp_and_serves_the_ui_on_the_compose_ports() -> None:
    config = load_yaml(host_path_for("jaeger", "/etc/jaeger/config.yaml"))
    assert set(config) <= JAEGER_TOP
    assert set(config["service"]) <= {"extensions", "pipelines", "telemetry"}
    for name, body in config["extensions"].items():
        assert name in JAEGER_EXTENSIONS, f"undocumented extension {name}"
        assert set(body or {}) <= JAEGER_EXTENSIONS[name], f"{name}: {set(body) - JAEGER_EXTENSIONS[name]}"
    assert set(config["service"]["extensions"]) == set(config["extensions"])
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(config.get(kind) or {}), f"{kind} not defined"
    backends = config["extensions"]["jaeger_storage"]["backends"]
    for backend in backends.values():
        assert set(backend) <= JAEGER_BACKENDS
    assert set(config["extensions"]["jaeger_query"]["storage"]) <= {"traces", "traces_archive", "metrics"}
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] in backends
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in backends
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) <= {"grpc", "http"}
    # The services' OTLP/HTTP endpoint, the published UI port and the healthcheck port are the configured ones.
    for svc in ("gateway", "payments"):
        otlp = compose_resolved()["services"][svc]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert urlsplit(otlp).hostname == "jaeger" and _port(otlp) == _port(protocols["http"]["endpoint"])
    assert _port(config["extensions"]["jaeger_query"]["http"]["endpoint"]) in _published("jaeger")
    assert _port(config["extensions"]["healthcheckv2"]["http"]["endpoint"]) == _healthcheck_port("jaeger")
    for endpoint in [p["endpoint"] for p in protocols.values()]:
        assert endpoint.startswith("0.0.0.0:"), f"{endpoint}: other containers could not reach it"


# ------------------------------------------------------------------------------------------------- RabbitMQ


def test_rabbitmq_enables_management_and_prometheus_plugins() -> None:
    plugins = host_path_for("rabbitmq", "/etc/rabbitmq/enabled_plugins").read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"\[([a-z_,\s]*)\]\.", plugins)
    assert match, "enabled_plugins must be one Erlang list term ending with a dot"
    assert {p.strip() for p in match.group(1).split(",")} >= {"rabbitmq_management", "rabbitmq_prometheus"}
    conf = host_path_for("rabbitmq", "/etc/rabbitmq/rabbitmq.conf").read_text(encoding="utf-8")
    settings = dict(
        (k.strip(), v.strip())
        for k, v in (line.split("=", 1) for line in conf.splitlines() if "=" in line and not line.startswith("#"))
    )
    assert settings["prometheus.tcp.port"] == "15692" and settings["listeners.tcp.default"] == "5672"
    assert not any("pass" in key or "user" in key for key in settings), "credentials belong in compose/.env"


# -------------------------------------------------------------------------------------------------- Grafana
# Keys from Grafana's "Provision Grafana" page (docs/sources/administration/provisioning: data sources and
# dashboard providers) and the data source pages (Prometheus exemplars, Loki derived fields, Jaeger
# tracesToLogsV2); the lab pins Grafana 11.6, where all of them apply.
GRAFANA_DS_FILE = {"apiVersion", "datasources", "deleteDatasources", "prune"}
GRAFANA_DS = {"name", "type", "access", "orgId", "uid", "url", "user", "database", "basicAuth", "basicAuthUser",
              "withCredentials", "isDefault", "jsonData", "secureJsonData", "version", "editable", "readOnly"}
GRAFANA_PROVIDER = {"name", "orgId", "folder", "folderUid", "type", "disableDeletion", "updateIntervalSeconds",
                    "allowUiUpdates", "options"}
EXEMPLAR_KEYS = {"name", "datasourceUid", "url", "urlDisplayLabel"}
DERIVED_FIELD_KEYS = {"name", "matcherRegex", "matcherType", "url", "urlDisplayLabel", "datasourceUid", "targetBlank"}
TRACES_TO_LOGS_KEYS = {"datasourceUid", "spanStartTimeShift", "spanEndTimeShift", "tags", "filterByTraceID",
                       "filterBySpanID", "customQuery", "query"}


def _provisioning(kind: str) -> list[dict]:
    folder = host_path_for("grafana", f"/etc/grafana/provisioning/{kind}")
    files = sorted(folder.glob("*.y*ml")) if folder else []
    assert files, f"no Grafana {kind} provisioning file is mounted"
    return [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]


def test_grafana_datasources_link_metrics_logs_and_traces() -> None:
    sources = {}
    for doc in _provisioning("datasources"):
        assert set(doc) <= GRAFANA_DS_FILE and doc["apiVersion"] == 1
        for ds in doc["datasources"]:
            assert set(ds) <= GRAFANA_DS, f"{ds.get('name')}: {set(ds) - GRAFANA_DS}"
            sources[ds["type"]] = ds
    assert {"prometheus", "loki", "jaeger"} <= set(sources)
    uids = {ds["type"]: ds["uid"] for ds in sources.values()}
    services = compose_resolved()["services"]
    for kind, port in (("prometheus", 9090), ("loki", 3100), ("jaeger", 16686)):
        url = urlsplit(sources[kind]["url"])
        assert url.hostname in services and url.port == port, f"{kind} datasource url {sources[kind]['url']}"
    exemplars = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert all(set(e) <= EXEMPLAR_KEYS for e in exemplars)
    assert any(e.get("datasourceUid") == uids["jaeger"] and e["name"] == "trace_id" for e in exemplars)
    derived = sources["loki"]["jsonData"]["derivedFields"]
    assert all(set(d) <= DERIVED_FIELD_KEYS for d in derived)
    assert any(d.get("datasourceUid") == uids["jaeger"] and "trace_id" in d["matcherRegex"] for d in derived)
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert set(to_logs) <= TRACES_TO_LOGS_KEYS and to_logs["datasourceUid"] == uids["loki"]


def test_grafana_dashboard_provider_reads_the_mounted_dashboards() -> None:
    for doc in _provisioning("dashboards"):
        assert set(doc) <= {"apiVersion", "providers"} and doc["apiVersion"] == 1
        for provider in doc["providers"]:
            assert set(provider) <= GRAFANA_PROVIDER
            assert provider.get("type", "file") == "file"
            folder = host_path_for("grafana", provider["options"]["path"])
            assert folder and list(folder.glob("*.json")), f"{provider['options']['path']}: no dashboards mounted"


# ------------------------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_postgres_init_script_creates_one_isolated_database_per_service(tmp_path: Path) -> None:
    from deploy_postgres import TempCluster  # a real PostgreSQL of the machine, in a temporary directory

    script = host_path_for("postgres", "/docker-entrypoint-initdb.d/10-init-databases.sh")
    with TempCluster(tmp_path) as pg:
        env = {f"{s.upper()}_DB_PASSWORD": f"pw-{s}" for s in pg.SERVICES}
        pg.run_script(script, env)
        for service in pg.SERVICES:
            assert pg.can_connect(service, f"pw-{service}", service)
            assert not pg.can_connect(service, "wrong", service)
            other = "orders" if service != "orders" else "users"
            assert not pg.can_connect(service, f"pw-{service}", other), f"{service} reaches {other}"


# The Prometheus Operator's default evaluationInterval (the Prometheus CRD's default, which both kube-prometheus
# and kube-prometheus-stack keep): the k8s overlay's PrometheusRule, the same rules, is evaluated this often.
OPERATOR_EVALUATION_INTERVAL_S = 30


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", duration))


def test_compose_prometheus_evaluates_the_slo_rules_at_the_operators_pace(tmp_path: Path) -> None:
    """Every group of the standard rules is evaluated no more often than the Operator's Prometheus evaluates the
    same PrometheusRule. At the 5 s of before, every one of the 1-day and 3-day windows (24 SLO rules over a day or
    three of 5 s samples) was recomputed every 5 s: after hours of uptime a laptop's cores were busy and the
    evaluations fell behind (prometheus_rule_group_iterations_missed_total)."""
    materialise_mounts("prometheus", tmp_path)
    config = load_yaml(tmp_path / "etc" / "prometheus" / "prometheus.yml")
    default = _seconds(config.get("global", {}).get("evaluation_interval", "1m"))
    longest = 0.0
    for rule_file in config["rule_files"]:
        for group in load_yaml(tmp_path / "etc" / "prometheus" / rule_file)["groups"]:
            interval = _seconds(group["interval"]) if "interval" in group else default
            windows = [_seconds(w) for rule in group["rules"] for w in re.findall(r"\[(\d+[smhdwy])\]", rule["expr"])]
            longest = max([longest, *windows])
            assert interval >= OPERATOR_EVALUATION_INTERVAL_S, \
                f"group {group['name']} (windows up to {max(windows, default=0):g} s) every {interval:g} s"
    assert longest >= 86400, "no day-long window found: the check read the wrong rules"


def test_grafana_lets_the_anonymous_viewer_follow_metric_trace_logs() -> None:
    """docs/deploy.md's flow (an exemplar opens the trace, a span opens its logs, a log line opens its trace) goes
    through Explore: every internal data-source link opens there. Grafana 11.6 grants Explore
    (fixed:datasources:explorer) to Editors, and to Viewers only with [users] viewers_can_edit (pkg/api/
    accesscontrol.go), so the anonymous Viewer the compose Grafana admits got "permission denied" at the first
    click."""
    env = compose_resolved()["services"]["grafana"]["environment"]
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "true", "no anonymous access: nothing to check"
    role = env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer")
    explore = role in ("Editor", "Admin") or str(env.get("GF_USERS_VIEWERS_CAN_EDIT")).lower() == "true"
    assert explore, f"the anonymous {role} cannot open Explore"


def test_alloy_ships_the_logs_of_this_stack_only() -> None:
    """Alloy reads the Docker socket, which lists every container on the host: without a filter it shipped all of
    them (other projects' logs, secrets in them included) into the lab's Loki. discovery.docker's `filter` block
    passes Docker's container-list filters (`label=com.docker.compose.project=<project>`, Docker Engine API,
    ContainerList); the project name reaches Alloy through its environment, from COMPOSE_PROJECT_NAME in the env
    file, which is also what names the project for docker compose v2 and docker-compose 1.29 alike."""
    blocks = parse_alloy(host_path_for("alloy", "/etc/alloy/config.alloy").read_text(encoding="utf-8"))
    (docker,) = [b for b in blocks if b.name == "discovery.docker"]
    environment = compose_resolved()["services"]["alloy"].get("environment", {})
    labels = []
    for block in docker.blocks:
        if block.name == "filter" and block.attributes.get("name") == '"label"':
            # ["prefix" + env("VAR")] or ["literal"]
            for prefix, var, literal in re.findall(r'"([^"]*)"\s*\+\s*env\s*\(\s*"(\w+)"\s*\)|"([^"]+)"',
                                                   block.attributes["values"]):
                labels.append(literal or prefix + str(environment.get(var, "")))
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
                   if "=" in line and not line.startswith("#"))
    project = example.get("COMPOSE_PROJECT_NAME")
    assert project, "compose/.env.example does not name the project (COMPOSE_PROJECT_NAME)"
    assert f"com.docker.compose.project={project}" in labels, f"Alloy's container filters: {labels}"
