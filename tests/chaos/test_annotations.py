"""The Grafana annotation control (chaoslab/chaos/annotations.py) in a real `chaos run`, loaded the way the compose
chaos runner loads it: from compose/chaos-runner/settings.yaml as Chaos Toolkit's settings. Grafana itself cannot
be installed here, so a local HTTP server stands in for its annotation API (POST /api/annotations) and records what
it is sent: the payload (time, timeEnd, tags, text) and the credentials are what Grafana's HTTP API takes. And a
Grafana that does not answer leaves the experiment as it was: completed, with a warning line."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaoslab.chaos.annotations import grafana_target
from support.procs import REPO_ROOT, PortPool

pytestmark = pytest.mark.quick

SETTINGS = REPO_ROOT / "compose" / "chaos-runner" / "settings.yaml"
CHAOS = Path(sys.executable).with_name("chaos")
PASSWORD = "p@ss:w/rd%"  # characters a URL must escape: the credentials still arrive as they are
HOLD_S = 1.0


class _Grafana(BaseHTTPRequestHandler):
    posted: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posted.append({"path": self.path, "auth": self.headers.get("Authorization"),  # type: ignore[attr-defined]
                                   "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": 1, "message": "Annotation added"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Grafana)
    server.posted = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({
        "version": "1.0.0",
        "title": "a tiny experiment",
        "description": "holds for a second, so that the annotation's region has a length",
        "tags": ["compose", "tiny"],
        "method": [{"type": "action", "name": "hold", "provider": {
            "type": "process", "path": sys.executable, "arguments": f"-c 'import time; time.sleep({HOLD_S})'"}}],
    }))
    return path


def _chaos_run(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    journal = tmp_path / "journal.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    done = subprocess.run([str(CHAOS), "--no-version-check", "--no-log-file", "--settings", str(SETTINGS), "run",
                           "--journal-path", str(journal), str(_experiment(tmp_path))],
                          cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert journal.exists(), f"no journal ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done, json.loads(journal.read_text())


def test_a_chaos_run_posts_its_start_and_its_whole_run_to_grafana(tmp_path: Path, grafana: HTTPServer) -> None:
    url = f"http://127.0.0.1:{grafana.server_address[1]}"
    before = time.time()
    done, journal = _chaos_run(tmp_path, {"GRAFANA_URL": url, "GRAFANA_USER": "admin", "GRAFANA_PASSWORD": PASSWORD})
    after = time.time()
    assert done.returncode == 0 and journal["status"] == "completed", done.stderr[-2000:]
    started, ended = grafana.posted  # type: ignore[attr-defined]
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    for post in (started, ended):
        assert post["path"] == "/api/annotations" and post["auth"] == basic
        assert post["body"]["tags"] == ["chaos", "experiment", "compose", "tiny"]
        assert before * 1000 <= post["body"]["time"] <= post["body"]["timeEnd"] <= after * 1000
    assert started["body"]["time"] == started["body"]["timeEnd"]  # a point: the start
    assert started["body"]["text"] == "chaos experiment started: a tiny experiment"
    assert ended["body"]["time"] == started["body"]["time"]  # a region over the whole run
    assert ended["body"]["timeEnd"] - ended["body"]["time"] >= HOLD_S * 1000
    assert ended["body"]["text"] == "chaos experiment a tiny experiment: completed"
    assert PASSWORD not in done.stdout + done.stderr
    assert "Grafana annotation posted" in done.stdout + done.stderr


@pytest.mark.parametrize("how", ["nothing listens", "a password not escaped in the URL"])
def test_a_grafana_that_cannot_be_reached_does_not_fail_the_experiment(tmp_path: Path, how: str) -> None:
    closed = PortPool(23800, 23899).take()  # nothing listens there
    if how == "nothing listens":
        env = {"GRAFANA_URL": f"http://127.0.0.1:{closed}", "GRAFANA_USER": "admin", "GRAFANA_PASSWORD": PASSWORD}
        where = f"http://127.0.0.1:{closed}"
    else:
        env = {"GRAFANA_URL": f"http://admin:{PASSWORD}@127.0.0.1:{closed}"}
        where = "the configured Grafana URL"
    done, journal = _chaos_run(tmp_path, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and journal["status"] == "completed" and not journal["deviated"], output[-2000:]
    assert output.count(f"Grafana annotation not posted to {where}") == 2, output[-2000:]
    assert "the experiment goes on" in output
    assert "w/rd" not in output and "p@ss" not in output  # no piece of the password


def test_where_grafana_is_comes_from_the_arguments_the_configuration_or_the_environment() -> None:
    env = {"GRAFANA_URL": "http://grafana:3000", "GRAFANA_USER": "admin", "GRAFANA_PASSWORD": "a b/c"}
    assert grafana_target({}, None, {}) is None
    assert grafana_target({}, None, env) == ("http://admin:a%20b%2Fc@grafana:3000", None)
    assert grafana_target({}, {"grafana_url": "http://g:1"}, env) == ("http://admin:a%20b%2Fc@g:1", None)
    assert grafana_target({"grafana_url": "http://a:2", "grafana_token": "t"}, {"grafana_url": "http://g:1"},
                          env) == ("http://a:2", "t")  # a token is the credential: no basic auth beside it
    assert grafana_target({}, None, {"GRAFANA_URL": "http://u:p@g:1", "GRAFANA_USER": "x",
                                     "GRAFANA_PASSWORD": "y"}) == ("http://u:p@g:1", None)
