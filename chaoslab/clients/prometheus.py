"""Prometheus' HTTP API: instant and range queries, alerts, and what Prometheus runs with (scrape targets, rule
groups, configuration, exemplars). Values come back as floats; NaN and infinities (0/0 over a window without
traffic) are left out, so "no sample" means "nothing to say"; `query_answer` gives an instant query's answer as it
is, for checks that an expression runs at all.

Queries are POSTed as forms (Prometheus accepts both): a dashboard's expression can outgrow a URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

from chaoslab.errors import ClientError

DEFAULT_TIMEOUT_S = 10.0
MAX_POINTS = 11_000  # Prometheus refuses more than 11000 points per series


class PrometheusError(ClientError):
    """Prometheus did not answer, or refused the query (the message holds its error, e.g. a parse error)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value)


def _value(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


class Prometheus:
    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, trust_env: bool = True) -> None:
        """`trust_env=False` ignores the environment's HTTP(S)_PROXY and NO_PROXY: for a Prometheus that must be
        reached directly whatever proxy the machine has (a container's port published on 127.0.0.1)."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.trust_env = trust_env

    def answer(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole JSON answer of an API call, an error answer (a 400 for a bad query) included.
        PrometheusError only when there is no JSON answer at all."""
        try:
            with requests.Session() as session:
                session.trust_env = self.trust_env
                if path in ("/api/v1/query", "/api/v1/query_range"):
                    resp = session.post(f"{self.url}{path}", data=params, timeout=self.timeout_s)
                else:
                    resp = session.get(f"{self.url}{path}", params=params, timeout=self.timeout_s)
                body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} does not answer: {exc.__class__.__name__}") from None
        if not isinstance(body, dict):
            raise PrometheusError(f"Prometheus at {self.url} answered something else than a JSON object")
        return body

    def _data(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = self.answer(path, params)
        if body.get("status") != "success":
            what = (params or {}).get("query", path)
            raise PrometheusError(f"Prometheus refused {what!r}: {body.get('error', 'no error given')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query's samples (at `at`, unix time, or now)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        out = []
        for item in self._data("/api/v1/query", params).get("result", []):
            value = _value(item["value"][1])
            if value is not None:
                out.append(Sample(dict(item.get("metric", {})), value))
        return out

    def query_answer(self, expr: str) -> dict[str, Any]:
        """The whole JSON answer to an instant query as Prometheus gave it: an error answer (status "error", e.g. a
        parse error, in "error") included, any result type, NaN samples kept."""
        return self.answer("/api/v1/query", {"query": expr})

    def scalar(self, expr: str, *, empty: float | None = None) -> float | None:
        """The single value of a query: the largest when several series answer, `empty` when none does."""
        values = [s.value for s in self.query(expr)]
        return max(values) if values else empty

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        step = max(step, (end - start) / MAX_POINTS, 0.5)
        data = self._data("/api/v1/query_range",
                          {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        out = []
        for item in data.get("result", []):
            points = [(float(t), v) for t, raw in item.get("values", []) if (v := _value(raw)) is not None]
            out.append(Series(dict(item.get("metric", {})), points))
        return out

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Prometheus holds (pending and firing), with labels, state and activeAt."""
        return list(self._data("/api/v1/alerts").get("alerts", []))

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets, each with its "labels" and "health" ("up", "down" or "unknown")."""
        return list(self._data("/api/v1/targets").get("activeTargets", []))

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus has loaded, each with its "rules" ("name", "query", "duration" in seconds...)."""
        return list(self._data("/api/v1/rules").get("groups", []))

    def config(self) -> str:
        """The configuration Prometheus runs with (after a reload, the reloaded one), as YAML text."""
        return str(self._data("/api/v1/status/config")["yaml"])

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """The exemplars stored between `start` and `end` (unix times) of the series `expr` selects: one entry per
        series, {"seriesLabels", "exemplars": [{"labels", "value", "timestamp"}]}."""
        return list(self._data("/api/v1/query_exemplars",
                               {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}))

    def alert_state(self, name: str, labels: dict[str, str] | None = None) -> str:
        """"firing", "pending" or "inactive": the most advanced state of any instance of `name` whose labels
        include `labels`."""
        states = {a.get("state") for a in self.alerts()
                  if a.get("labels", {}).get("alertname") == name and labels_match(a.get("labels", {}), labels)}
        for state in ("firing", "pending"):
            if state in states:
                return state
        return "inactive"


def labels_match(labels: dict[str, str], wanted: dict[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (wanted or {}).items())
