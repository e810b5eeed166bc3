"""The lab's webhook receiver: records every Alertmanager notification, serves them back.

Run as `python -m chaoslab.lab.webhook --port PORT --out STATE/alerts/notifications.jsonl` (the lab does).

- POST on any path (Alertmanager's webhook_configs url): the JSON body is appended to the out file as one line,
  the notification itself with a `received_at` key added (unix time, float). 200 {"status": "ok"}.
- GET /notifications?since=<unix ts>: {"now": <unix ts>, "notifications": [...]} of those received after
  `since` (default 0: all), oldest first. Poll with since=<the previous answer's now> to get each one once.
- GET /health: 200.

`notifications(url, since)` is the client of that API, and `events()` reads the notifications' alerts (the
gameday's and the Chaos Toolkit probes' one reading of Alertmanager's webhook payload).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from chaoslab.errors import ClientError

OUT_KEY: web.AppKey[Path] = web.AppKey("out", Path)
LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("lock", asyncio.Lock)


async def receive(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"status": "error", "detail": "the body is not JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"status": "error", "detail": "the body is not a JSON object"}, status=400)
    record = dict(body)
    record["received_at"] = time.time()
    line = json.dumps(record, separators=(",", ":")) + "\n"
    async with request.app[LOCK_KEY]:
        await asyncio.to_thread(_append, request.app[OUT_KEY], line)
    return web.json_response({"status": "ok"})


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line)


def read_notifications(path: Path, since: float = 0.0) -> list[dict[str, object]]:
    """The notifications recorded in `path` after `since` (also usable without the server)."""
    out = []
    try:
        with open(path, encoding="utf-8") as src:
            for line in src:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if float(record.get("received_at", 0)) > since:
                    out.append(record)
    except FileNotFoundError:
        pass
    return out


async def serve_notifications(request: web.Request) -> web.Response:
    try:
        since = float(request.query.get("since", "0") or 0)
    except ValueError:
        return web.json_response({"status": "error", "detail": "since must be a unix timestamp"}, status=400)
    now = time.time()
    async with request.app[LOCK_KEY]:
        items = await asyncio.to_thread(read_notifications, request.app[OUT_KEY], since)
    return web.json_response({"now": now, "notifications": items})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(out: Path) -> web.Application:
    out.parent.mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app[OUT_KEY] = out
    app[LOCK_KEY] = asyncio.Lock()
    app.router.add_get("/health", health)
    app.router.add_get("/notifications", serve_notifications)
    app.router.add_post("/{tail:.*}", receive)
    return app


# -- the client ---------------------------------------------------------------------------------------------------

CLIENT_TIMEOUT_S = 5.0


def notifications(url: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The notifications the receiver at `url` got after `since` (unix time), oldest first."""
    try:
        resp = requests.get(f"{url}/notifications", params={"since": since}, timeout=CLIENT_TIMEOUT_S)
        resp.raise_for_status()
        return list(resp.json().get("notifications", []))
    except (requests.RequestException, ValueError) as exc:
        raise ClientError(f"the lab's webhook receiver does not answer: {exc.__class__.__name__}") from None


@dataclass(frozen=True)
class AlertEvent:
    """One alert of one notification: its name and labels, firing or resolved, when the receiver got it."""

    name: str
    labels: dict[str, str]
    status: str  # "firing" or "resolved"
    received_at: float
    starts_at: float | None  # when Prometheus fired it (Alertmanager's startsAt)
    fingerprint: str

    def matches(self, name: str | None, labels: dict[str, str] | None = None, status: str | None = None) -> bool:
        return ((name is None or self.name == name) and (status is None or self.status == status)
                and all(self.labels.get(k) == v for k, v in (labels or {}).items()))


def _ts(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None  # Alertmanager's zero time: not set
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def events(notes: list[dict[str, Any]]) -> list[AlertEvent]:
    """One event per alert per notification, oldest first."""
    out = []
    for note in notes:
        at = float(note.get("received_at", 0.0))
        for item in note.get("alerts", []):
            labels = dict(item.get("labels", {}))
            out.append(AlertEvent(labels.get("alertname", "?"), labels, str(item.get("status", "?")), at,
                                  _ts(item.get("startsAt")), str(item.get("fingerprint", ""))))
    return sorted(out, key=lambda e: e.received_at)


# -- the server as a program ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    state = Path(os.environ.get("CHAOSLAB_STATE_DIR", ".chaoslab"))
    parser = argparse.ArgumentParser(prog="python -m chaoslab.lab.webhook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CHAOSLAB_WEBHOOK_PORT", "18022")))
    parser.add_argument("--out", type=Path, default=state / "alerts" / "notifications.jsonl")
    args = parser.parse_args(argv)
    web.run_app(make_app(args.out), host=args.host, port=args.port, print=None,
                handle_signals=True, shutdown_timeout=2.0)


if __name__ == "__main__":
    main()
