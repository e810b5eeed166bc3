"""Fault windows as Grafana annotations (grafana-client), where a Grafana runs: the compose lab's, or any other
that watches the same Prometheus. They carry the tag `chaos`, which the chaos dashboard's annotation query
shows (chaoslab/observability/dashboards/chaos.py), plus `gameday` and the experiment's name.

Configured by --grafana-url / $GRAFANA_URL; credentials from $GRAFANA_TOKEN (a service account token) or
user:password in the URL. No URL, no annotations: the report does not need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

TAGS = ("chaos", "gameday")


@dataclass(frozen=True)
class Annotation:
    start: float
    end: float
    text: str
    tags: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"time_from": int(self.start * 1000), "time_to": int(self.end * 1000), "tags": list(self.tags),
                "text": self.text}


def _client(url: str, token: str | None) -> Any:
    from grafana_client import GrafanaApi

    parts = urlsplit(url)
    credential: Any = token
    if parts.username is not None:  # http://user:password@host:3000
        credential = (parts.username, parts.password or "")
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return GrafanaApi.from_url(url, credential=credential)


def post(url: str, token: str | None, annotations: list[Annotation]) -> dict[str, Any]:
    """POST each annotation; a Grafana that does not answer is a note in the report, not a failed gameday."""
    result: dict[str, Any] = {"url": url, "posted": 0, "errors": []}
    try:
        api = _client(url, token)
    except Exception as exc:  # noqa: BLE001 - grafana-client raises many kinds; all mean "not posted"
        result["errors"].append(f"{exc.__class__.__name__}: {exc}")
        return result
    for item in annotations:
        try:
            api.annotations.add_annotation(**item.payload())
            result["posted"] += 1
        except Exception as exc:  # noqa: BLE001
            result["errors"].append(f"{item.text}: {exc.__class__.__name__}: {exc}")
    return result
