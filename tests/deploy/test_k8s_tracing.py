"""Where the services' spans go in each Kubernetes layer.

The kit exports spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and otherwise appends every recorded
span to a JSON-lines file under SPANS_DIR (native mode's trace store, docs/design.md). In a pod that file grows on
the /tmp emptyDir (sizeLimit 64Mi) until the kubelet evicts the pod, as it did under the documented 10-minute load
run with no trace endpoint (base, load and chaos). So every Deployment either exports over OTLP or runs with the
tracing settings of the base, which a real auth process, started with the base's rendered environment and given
requests, is seen to turn into no span file at all.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from deploy_k8s import APPLIED, LAYERS, named, of_kind, pod_spec

from support.procs import PortPool, sqlite_url, start

pytestmark = pytest.mark.services

# This module's own port range (tests/support/procs.py: each suite keeps to its own).
PORTS = PortPool(23000, 23099)
# What decides where spans go and how many there are (services/kit/config.py, docs/design.md).
TRACING_PREFIXES = ("OTEL_", "TRACES_", "SPANS_DIR", "INSTRUMENTATION")


def _env(deployment: dict) -> list[dict]:
    return pod_spec(deployment)["containers"][0]["env"]


def _tracing(deployment: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _env(deployment) if e["name"].startswith(TRACING_PREFIXES)}


@pytest.mark.parametrize("layer", LAYERS)
def test_every_service_exports_its_spans_or_records_none(layer: str) -> None:
    base = _tracing(named("base", "Deployment", "auth"))
    checked = 0
    for deployment in of_kind(layer, "Deployment"):
        tracing = _tracing(deployment)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in tracing:
            assert tracing.get("OTEL_TRACES_SAMPLER_ARG", "1.0") != "0", f"{layer}: exports, but records nothing"
            continue
        assert tracing == base, f"{layer} {deployment['metadata']['name']}: {tracing} (base: {base})"
        checked += 1
    assert checked or "overlays/observability" in APPLIED[layer], f"{layer}: no Deployment checked"


def test_a_service_with_the_base_environment_writes_no_span_file(tmp_path: Path) -> None:
    """Run auth with the base Deployment's literal environment (a SQLite database and free ports in place of the
    cluster's) and send it requests that the kit traces: the span directory must stay empty."""
    env = {e["name"]: e["value"] for e in _env(named("base", "Deployment", "auth")) if "value" in e}
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env, "this check is about the base, which has no trace backend"
    env.update(HTTP_HOST="127.0.0.1", DATABASE_URL=sqlite_url(tmp_path / "auth.db"), ADMIN_TOKEN="t",
               BOOTSTRAP_ADMIN="admin@chaoslab.local:admin-password")
    spans = tmp_path / "spans"
    handle = start("auth", {**env, "SPANS_DIR": str(spans)}, ports=PORTS, log_dir=tmp_path)
    try:
        for _ in range(20):
            with urllib.request.urlopen(handle.url + "/.well-known/jwks.json", timeout=5) as response:
                assert json.loads(response.read())["keys"]
        time.sleep(1.5)  # the kit's batch span processor writes once a second
    finally:
        handle.stop()  # a graceful stop flushes what is still queued
    written = {p.name: p.stat().st_size for p in spans.glob("*.jsonl") if p.stat().st_size}
    assert not written, f"spans written to the pod's disk: {written}"
