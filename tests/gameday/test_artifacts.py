"""The run directory's artifacts (quick, no lab): from one collected result, summary.json, junit.xml and
report.html name the same verdicts with the same outcome; charts and the timeline are real SVG with their
points; the report needs nothing from the network; fault windows reach Grafana's annotation API."""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaoslab.chaos.verdict import compute
from chaoslab.gameday import alerts, charts, evidence, grafana, plan, runner, svg, verdicts
from chaoslab.gameday.experiment import ExperimentResult
from chaoslab.gameday.journal import FaultWindow
from chaoslab.gameday.loadphase import LoadPhase
from chaoslab.gameday.measure import ClientView, Recovery
from chaoslab.gameday.result import GamedayResult
from chaoslab.lab import webhook

from . import artifacts

pytestmark = pytest.mark.quick

T0 = 1_800_000_000.0
JOURNAL = Path(__file__).parents[1] / "chaos" / "journals" / "passed-kill-payments-replica.json"
ROW = {"method": "POST", "name": "/api/orders", "requests": 10, "failures": 1, "rps": 1.0, "ok_rps": 0.9,
       "failures_per_s": 0.1, "avg_ms": 50.0, "p50_ms": 40.0, "p95_ms": 90.0, "p99_ms": 120.0, "max_ms": 130.0}


def spans(trace_id: str) -> list[dict[str, Any]]:
    start = int(T0 * 1e9) + 30 * 10**9
    return [
        {"trace_id": trace_id, "span_id": "a", "parent_id": None, "name": "POST /api/orders", "kind": "server",
         "service": "gateway", "replica": "gateway-1", "start_ns": start, "end_ns": start + 900_000_000,
         "status": "error", "error": "503"},
        {"trace_id": trace_id, "span_id": "b", "parent_id": "a", "name": "POST /orders", "kind": "server",
         "service": "orders", "replica": "orders-1", "start_ns": start + 1_000_000, "end_ns": start + 890_000_000,
         "status": "error", "error": "payments unavailable"},
    ]


def collected(tmp_path: Path) -> GamedayResult:
    quick = plan.load("quick")
    spec = quick.experiments[-1]  # payments-down, with its ServiceDown expectation
    result = GamedayResult(quick, tmp_path / "run", T0, T0 + 120)
    result.run_dir.mkdir()
    result.lab = {"state_dir": "/tmp/lab", "base_port": 18000, "started_by_gameday": True, "startup_s": 20.0}
    result.verdicts.append(verdicts.Verdict("lab", "lab up and ready", True, 20.0, None, "s"))
    result.baseline = LoadPhase("baseline", "rate", T0, str(tmp_path / "baseline"), T0 + 30,
                                {"total": {**ROW, "name": "Aggregated", "method": ""}, "entries": [ROW], "errors": [],
                                 "checks": [{"what": "error ratio", "limit": "<= 1%", "observed": "0%", "ok": True}],
                                 "passed": True})
    result.verdicts.append(verdicts.Verdict("baseline", "load thresholds", True, detail="1 checks held"))
    exp = ExperimentResult(spec, 0, path="chaos/payments-down.json", title="payments down", started=T0 + 35,
                           chaos_ended=T0 + 80, ended=T0 + 90)
    exp.fault = FaultWindow(T0 + 40, T0 + 55, "stop-every-payments-replica", "start-payments")
    exp.recovery = Recovery(True, T0 + 63, 8.0, T0 + 70)
    exp.client = ClientView(T0 + 40, T0 + 63, 180, 30, 0.1667, 0.05, 0.4, 0.9)
    exp.audit = {"ok": True, "orders": 10, "payments": 10, "notifications": 10, "in_flight": 0, "missing_payment": 0,
                 "missing_notification": 0, "duplicate_payment": 0, "duplicate_notification": 0,
                 "duplicate_deliveries_dropped": 0}
    seen = webhook.events([
        {"received_at": T0 + 49, "alerts": [{"status": "firing", "fingerprint": "p", "startsAt": "",
                                              "labels": {"alertname": "ServiceDown", "service": "payments"}}]},
        {"received_at": T0 + 58, "alerts": [{"status": "resolved", "fingerprint": "p",
                                              "labels": {"alertname": "ServiceDown", "service": "payments"}}]}])
    exp.alerts = [alerts.outcome(a, seen, exp.fault) for a in spec.alerts]
    data = json.loads(JOURNAL.read_text())
    exp.verdicts = verdicts.hypothesis_verdicts(spec.name, compute(data), {"method": 3, "rollbacks": 1}, {})
    exp.verdicts += verdicts.alert_verdicts(spec.name, spec, exp.alerts)
    exp.verdicts.append(verdicts.recovery_verdict(spec.name, spec, exp.fault, exp.recovery))
    exp.verdicts += verdicts.client_verdicts(spec.name, spec, exp.client)
    exp.verdicts.append(verdicts.Verdict(spec.name, "a bound that failed", False, 3.0, 1.0, "s", "made to fail"))
    trace = evidence.TraceEvidence("failed", "f" * 32, "gateway: POST /api/orders", T0 + 30, 900.0, 2,
                                   ["gateway", "orders"], evidence.render_waterfall(spans("f" * 32)),
                                   [{"time": "t", "replica": "orders-1", "level": "error", "message": "no payments",
                                     "service": "orders"}])
    exp.evidence = [trace]
    result.experiments.append(exp)
    result.alert_intervals = alerts.intervals(seen)
    windows = result.fault_windows()
    for spec_ in charts.KEY_PANELS[:2]:
        chart = charts.Chart(spec_.section, spec_.panel, "dashboards/x.json", "reqps", ["up"])
        chart.lines = [svg.Line("gateway", [(T0 + t, float(t % 7)) for t in range(0, 121, 2)], "#2563eb"),
                       svg.Line("orders", [(T0 + t, 1.0) for t in range(0, 50, 2)] + [(T0 + 90, 2.0)], "#dc2626")]
        chart.svg = svg.chart(chart.lines, T0, T0 + 120, windows, "reqps", title=spec_.panel)
        result.charts.append(chart)
    return result


def test_summary_junit_and_report_agree(tmp_path: Path) -> None:
    result = collected(tmp_path)
    runner.write(result)
    run_dir = result.run_dir
    from_summary = artifacts.summary_verdicts(run_dir)
    assert from_summary == artifacts.junit_verdicts(run_dir) == artifacts.report_verdicts(run_dir)
    assert from_summary["payments-down: a bound that failed"] is False
    assert from_summary['payments-down: alert ServiceDown{service="payments"} time-to-detect'] is True
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] is False and summary["counts"]["failed"] == 1
    assert artifacts.read_report(run_dir).overall is False
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert root.attrib["tests"] == str(len(from_summary)) and root.attrib["failures"] == "1"
    [failure] = list(root.iter("failure"))
    assert failure.attrib["message"] == "measured 3.0 s, bound ≤ 1 s; made to fail"
    [experiment] = summary["experiments"]
    assert experiment["alerts"][0]["time_to_detect_s"] == 9.0 and experiment["alerts"][0]["time_to_resolve_s"] == 3.0


def test_the_report_opens_offline_and_draws_charts_timeline_and_waterfalls(tmp_path: Path) -> None:
    result = collected(tmp_path)
    runner.write(result)
    html = (result.run_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report must not fetch anything"
    assert "<script" not in html
    report = artifacts.read_report(result.run_dir)
    assert len(report.charts) == 2
    for chart in report.charts:
        assert chart["points"] == chart["drawn"] == 61 + 26 and chart["polylines"] >= 2  # the gap splits a line
        assert T0 <= chart["first"] <= chart["last"] <= T0 + 120
    assert report.timeline_bars >= 4  # load, experiment, fault, alert
    assert 'class="fault"' in html and "payments-down" in html
    assert 'data-trace-id="' + "f" * 32 in html and "no payments" in html
    assert '<pre class="waterfall">' in html and "payments unavailable" in html
    assert "/api/orders" in html  # Locust's statistics


def test_charts_take_their_queries_from_the_dashboards() -> None:
    from chaoslab.observability.dashboards import dashboards

    exprs = {t.expr for board in dashboards() for p in board.panels() for t in p.targets}
    for spec in charts.KEY_PANELS:
        from chaoslab.gameday import panels

        for query in panels.queries(spec.dashboard, spec.panel, "10s"):
            assert "$" not in query.expr
        _, panel = panels.panel(spec.dashboard, spec.panel)
        assert all(t.expr in exprs for t in panel.targets)
    assert {s.section for s in charts.KEY_PANELS} >= {"RED per service", "SLO burn", "Payments capacity",
                                                        "Queue depth"}


class _Grafana(BaseHTTPRequestHandler):
    posted: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Grafana.posted.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": 1, "message": "Annotation added"}')

    def log_message(self, *args: Any) -> None:
        pass


def test_fault_windows_become_grafana_annotations() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        notes = [grafana.Annotation(T0, T0 + 15, "gameday quick: payments-down", (*grafana.TAGS, "payments-down"))]
        result = grafana.post(url, "service-account-token", notes)
    finally:
        server.shutdown()
    assert result == {"url": url, "posted": 1, "errors": []}
    [posted] = _Grafana.posted
    assert posted["path"] == "/api/annotations" and posted["auth"] == "Bearer service-account-token"
    assert posted["time"] == int(T0 * 1000) and posted["timeEnd"] == int((T0 + 15) * 1000)
    assert posted["tags"] == ["chaos", "gameday", "payments-down"]


def test_an_unreachable_grafana_is_reported_not_raised() -> None:
    result = grafana.post("http://127.0.0.1:9", None, [grafana.Annotation(T0, T0 + 1, "x", grafana.TAGS)])
    assert result["posted"] == 0 and result["errors"]
