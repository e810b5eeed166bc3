"""The admin client's token-free half (chaoslab/clients/admin.py: `live`, `metrics_text`) against a small HTTP
server standing in for a replica's admin port, and the two readers that go through it: the compose kill's wait
for a replica to be gone (chaoslab/chaos/crash.py) and scale-test's per-replica count (chaoslab/load/scaletest.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chaoslab.chaos import crash
from chaoslab.clients.admin import live, metrics_text
from chaoslab.errors import ClientError, LabError
from chaoslab.load.scaletest import processed_by_replica

pytestmark = pytest.mark.quick

METRICS = """# TYPE payments_processed_total counter
payments_processed_total{outcome="charged",service="payments"} 7.0
payments_processed_total{outcome="declined",service="payments"} 3.0
payments_processed_total{outcome="charged",reason="retry",service="payments"} 2.0
"""


class _Server(ThreadingHTTPServer):
    answers: dict[str, int]  # path -> the status code it answers


class _Replica(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        code = self.server.answers.get(self.path, 404)
        body = METRICS.encode() if self.path == "/metrics" else b'{"status": "live"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def replica() -> Iterator[tuple[dict[str, Any], dict[str, int]]]:
    """A stand-in replica record and the status codes its server answers (a test may change them)."""
    server = _Server(("127.0.0.1", 0), _Replica)
    server.answers = {"/health/live": 200, "/metrics": 200}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"name": "payments-1", "admin_url": f"http://127.0.0.1:{server.server_port}"}, server.answers
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_live_is_true_only_for_a_200(replica: tuple[dict[str, Any], dict[str, int]]) -> None:
    record, answers = replica
    assert live(record) is True
    answers["/health/live"] = 503
    assert live(record) is False
    assert live({"name": "gone", "admin_url": f"http://127.0.0.1:{_closed_port()}"}, timeout_s=0.5) is False


def test_live_asks_the_replica_itself_past_a_configured_proxy(replica: tuple[dict[str, Any], dict[str, int]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would answer for a replica that is gone; here a proxy that does not exist would make it look gone."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert live(replica[0]) is True


def test_wait_gone_returns_for_a_replica_that_does_not_answer_and_names_one_that_does(
        replica: tuple[dict[str, Any], dict[str, int]]) -> None:
    [gone] = crash.wait_gone([{"name": "payments-2", "admin_url": f"http://127.0.0.1:{_closed_port()}"}], 2)
    assert gone["name"] == "payments-2" and gone["gone_after_s"] < 2 and gone["at"] > 0
    with pytest.raises(LabError, match="payments-1 still answers after 0.3 s"):
        crash.wait_gone([replica[0]], timeout_s=0.3)


def test_metrics_text_is_the_exposition_or_a_client_error(replica: tuple[dict[str, Any], dict[str, int]]) -> None:
    record, answers = replica
    assert metrics_text(record) == METRICS
    answers["/metrics"] = 500
    with pytest.raises(ClientError, match="metrics of payments-1: HTTPError"):
        metrics_text(record)
    with pytest.raises(ClientError, match="metrics of gone: ConnectionError"):
        metrics_text({"name": "gone", "admin_url": f"http://127.0.0.1:{_closed_port()}"})


def test_scale_test_counts_each_replicas_charges_and_skips_one_that_does_not_answer(
        replica: tuple[dict[str, Any], dict[str, int]]) -> None:
    registry = {"services": {"payments": {"replicas": [
        replica[0], {"name": "payments-2", "admin_url": f"http://127.0.0.1:{_closed_port()}"}]}}}
    assert processed_by_replica(registry, "payments") == {"payments-1": 9.0}
