"""The project's one Prometheus client (chaoslab/clients/prometheus.py) against the real binary: the `prometheus`
fixture's empty TSDB, whose configuration has no scrape job and no rule. The lab tests read targets, rules, the
configuration and exemplars through it; here each answer's shape is checked where it is known exactly."""

from __future__ import annotations

import time

import pytest

from chaoslab.clients.prometheus import Prometheus, PrometheusError, Sample

pytestmark = pytest.mark.quick


def test_what_prometheus_runs_with(prometheus: Prometheus) -> None:
    assert "scrape_interval: 2s" in prometheus.config()
    assert prometheus.targets() == []
    assert prometheus.rule_groups() == []
    now = time.time()
    assert prometheus.exemplars('up{job="none"}', now - 60, now) == []


def test_instant_queries_leave_nan_out_and_query_answer_keeps_it(prometheus: Prometheus) -> None:
    assert prometheus.query("vector(1)") == [Sample({}, 1.0)]
    assert prometheus.query("vector(0) / 0") == []  # NaN: nothing to say
    answer = prometheus.query_answer("vector(0) / 0")
    assert answer["status"] == "success"
    assert [r["value"][1] for r in answer["data"]["result"]] == ["NaN"]
    scalar = prometheus.query_answer("scalar(vector(2))")["data"]
    assert scalar["resultType"] == "scalar" and scalar["result"][1] == "2"


def test_a_refused_query_is_an_error_with_prometheus_reason(prometheus: Prometheus) -> None:
    answer = prometheus.query_answer("sum(")
    assert answer["status"] == "error" and answer["error"]
    with pytest.raises(PrometheusError, match=r"Prometheus refused 'sum\(': .*parse error"):
        prometheus.query("sum(")


def test_a_prometheus_that_does_not_answer_is_an_error() -> None:
    with pytest.raises(PrometheusError, match="does not answer"):
        Prometheus("http://127.0.0.1:9", timeout_s=2).targets()


def test_trust_env_false_goes_past_a_configured_proxy(prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment (here one that does not exist) takes every request, 127.0.0.1's too, unless the
    client is told to ignore it (the container test reaches Prometheus' published port that way)."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    with pytest.raises(PrometheusError, match="does not answer"):
        Prometheus(prometheus.url).targets()
    assert Prometheus(prometheus.url, trust_env=False).targets() == []
