"""Prometheus and alert checks: instant queries, alert states, and the webhook receiver's notifications."""

from __future__ import annotations

import math
import time
from typing import Any

import requests
from chaoslib.exceptions import ActivityFailed

from chaoslab.observability import slos

TIMEOUT_S = 5.0


def query(reg: dict[str, Any], promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector (ActivityFailed when Prometheus cannot answer)."""
    try:
        resp = requests.get(f"{reg['prometheus_url']}/api/v1/query", params={"query": promql}, timeout=TIMEOUT_S)
        body = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise ActivityFailed(f"Prometheus does not answer: {exc.__class__.__name__}") from None
    if body.get("status") != "success":
        raise ActivityFailed(f"Prometheus refused {promql!r}: {body.get('error', resp.text[:200])}")
    return list(body["data"]["result"])


def scalar(reg: dict[str, Any], promql: str, *, empty: float | None = None) -> float | None:
    """The single value of a query; `empty` when it has no sample (no traffic) or the value is NaN
    (0/0 over a window without requests). The maximum when several series answer."""
    values = []
    for sample in query(reg, promql):
        value = float(sample["value"][1])
        if not math.isnan(value):
            values.append(value)
    return max(values) if values else empty


def _service_matcher(service: str) -> str:
    return f'service="{service}"'


def error_ratio_query(service: str, window: str) -> str:
    """Share of server errors (5xx, or gRPC server-fault codes for payments) over `window`."""
    build = slos.grpc_error_ratio if service in slos.GRPC_SERVICES else slos.http_error_ratio
    return build(window, _service_matcher(service))


def latency_query(service: str, quantile: float, window: str) -> str:
    build = slos.grpc_latency_quantile if service in slos.GRPC_SERVICES else slos.http_latency_quantile
    return build(quantile, window, _service_matcher(service))


def burn_rate_query(service: str, window: str) -> str:
    """How fast `service` spends its availability budget over `window` (1 = exactly the budget)."""
    return slos.slo(service, "availability").burn_rate(window)


def alerts(reg: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        body = requests.get(f"{reg['prometheus_url']}/api/v1/alerts", timeout=TIMEOUT_S).json()
    except (requests.RequestException, ValueError) as exc:
        raise ActivityFailed(f"Prometheus does not answer: {exc.__class__.__name__}") from None
    return list(body.get("data", {}).get("alerts", []))


def labels_match(labels: dict[str, str], wanted: dict[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


def alert_state(reg: dict[str, Any], alert: str, labels: dict[str, str] | None = None) -> str:
    """"firing", "pending" or "inactive": the most advanced state of any matching alert instance."""
    states = {a.get("state") for a in alerts(reg)
              if a.get("labels", {}).get("alertname") == alert and labels_match(a.get("labels", {}), labels)}
    for state in ("firing", "pending"):
        if state in states:
            return state
    return "inactive"


def notifications(reg: dict[str, Any], since: float = 0.0) -> list[dict[str, Any]]:
    """Alertmanager notifications the lab's webhook receiver got after `since` (unix time), oldest first."""
    try:
        resp = requests.get(f"{reg['webhook_url']}/notifications", params={"since": since}, timeout=TIMEOUT_S)
        resp.raise_for_status()
        return list(resp.json().get("notifications", []))
    except (requests.RequestException, ValueError) as exc:
        raise ActivityFailed(f"the lab's webhook receiver does not answer: {exc.__class__.__name__}") from None


def matching_alerts(notification: dict[str, Any], alert: str | None, status: str | None,
                    labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The alerts of one notification (Alertmanager's webhook payload) named `alert` in `status`."""
    found = []
    for item in notification.get("alerts", []):
        item_labels = item.get("labels", {})
        if alert is not None and item_labels.get("alertname") != alert:
            continue
        if status is not None and item.get("status") != status:
            continue
        if labels_match(item_labels, labels):
            found.append(item)
    return found


def received(reg: dict[str, Any], alert: str | None, status: str | None, since: float,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every alert notified after `since`: {"alert", "status", "labels", "received_at", "delay_s"}."""
    out = []
    for note in notifications(reg, since):
        at = float(note.get("received_at", 0.0))
        for item in matching_alerts(note, alert, status, labels):
            out.append({"alert": item.get("labels", {}).get("alertname"), "status": item.get("status"),
                        "labels": item.get("labels", {}), "received_at": at, "delay_s": round(at - since, 3)})
    return out


def wait_for(check: Any, timeout_s: float, interval_s: float = 1.0) -> tuple[Any, float]:
    """Poll `check()` until it returns something truthy: (that value, seconds waited), (None, waited) on timeout."""
    started = time.monotonic()
    while True:
        value = check()
        waited = time.monotonic() - started
        if value:
            return value, waited
        if waited > timeout_s:
            return None, waited
        time.sleep(interval_s)
