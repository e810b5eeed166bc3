"""Prometheus' HTTP API, the two calls a gameday needs: instant and range queries, values as floats."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT_S = 15.0
MAX_POINTS = 11_000  # Prometheus refuses more than 11000 points per series


class PromError(Exception):
    pass


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value); NaN kept out


def _get(base_url: str, path: str, params: dict[str, Any]) -> Any:
    try:
        resp = requests.get(f"{base_url}{path}", params=params, timeout=TIMEOUT_S)
        body = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise PromError(f"Prometheus at {base_url} does not answer: {exc.__class__.__name__}") from None
    if body.get("status") != "success":
        raise PromError(f"Prometheus refused {params.get('query')!r}: {body.get('error', resp.text[:200])}")
    return body["data"]


def _value(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def query_range(base_url: str, promql: str, start: float, end: float, step: float) -> list[Series]:
    step = max(step, (end - start) / MAX_POINTS, 0.5)
    data = _get(base_url, "/api/v1/query_range",
                {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    out = []
    for item in data.get("result", []):
        points = [(float(t), v) for t, raw in item.get("values", []) if (v := _value(raw)) is not None]
        out.append(Series(dict(item.get("metric", {})), points))
    return out


def query(base_url: str, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
    params: dict[str, Any] = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = _get(base_url, "/api/v1/query", params)
    out = []
    for item in data.get("result", []):
        value = _value(item["value"][1])
        if value is not None:
            out.append((dict(item.get("metric", {})), value))
    return out


def alerts(base_url: str) -> list[dict[str, Any]]:
    return list(_get(base_url, "/api/v1/alerts", {}).get("alerts", []))
