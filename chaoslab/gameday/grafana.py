"""Fault windows as Grafana annotations, where a Grafana runs: the compose lab's, or any other that watches the
same Prometheus. They carry the tag `chaos`, which the chaos dashboard's annotation query shows
(chaoslab/observability/dashboards/chaos.py), plus `gameday` and the experiment's name.

Configured by --grafana-url / $GRAFANA_URL; credentials from $GRAFANA_TOKEN (a service account token) or
user:password in the URL. No URL, no annotations: the report does not need them.

One POST per annotation to Grafana's HTTP API (POST /api/annotations) with requests: grafana-client did the same
through niquests, whose urllib3-future replaces urllib3 for every package in the environment (Schemathesis and
requests broke on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

TAGS = ("chaos", "gameday")
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Annotation:
    start: float
    end: float
    text: str
    tags: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        """The body of POST /api/annotations: epoch milliseconds, a region when end is after start."""
        return {"time": int(self.start * 1000), "timeEnd": int(self.end * 1000), "tags": list(self.tags),
                "text": self.text}


def _session(url: str, token: str | None) -> tuple[requests.Session, str]:
    """A session with the credentials and the API's base URL (user:password taken out of the URL)."""
    session = requests.Session()
    parts = urlsplit(url)
    if parts.username is not None:  # http://user:password@host:3000, percent-encoded as in any URL
        session.auth = (unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    elif token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session, url.rstrip("/")


def post(url: str, token: str | None, annotations: list[Annotation]) -> dict[str, Any]:
    """POST each annotation; a Grafana that does not answer is a note in the report, not a failed gameday."""
    result: dict[str, Any] = {"url": url, "posted": 0, "errors": []}
    try:
        session, base = _session(url, token)
    except ValueError as exc:  # a URL that cannot be parsed (e.g. a bad port)
        result["errors"].append(f"{exc.__class__.__name__}: {exc}")
        return result
    with session:
        for item in annotations:
            try:
                answer = session.post(f"{base}/api/annotations", json=item.payload(), timeout=TIMEOUT_S)
                answer.raise_for_status()
                result["posted"] += 1
            except requests.RequestException as exc:
                result["errors"].append(f"{item.text}: {_reason(exc)}")
    return result


def _reason(exc: requests.RequestException) -> str:
    """A short reason without the credentials a URL may carry."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return exc.__class__.__name__
