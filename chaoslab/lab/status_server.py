"""The small JSON status server of the lab's own supervisord programs (the endpoints controller, the certificate
rotator): GET /health for supervisord's and the lab's readiness checks, and a view of what the program holds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# path -> (body, status)
Routes = dict[str, Callable[[], tuple[Any, int]]]


def health(ready: Callable[[], bool]) -> Callable[[], tuple[Any, int]]:
    """A /health route: 200 once `ready()`, 503 before."""
    return lambda: ({"status": "ok"}, 200) if ready() else ({"status": "starting"}, 503)


def serve(port: int, routes: Routes) -> ThreadingHTTPServer:
    """Serve `routes` as JSON on 127.0.0.1:port from a daemon thread; anything else answers 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            route = routes.get(self.path)
            body, status = route() if route is not None else ({"error": "not found"}, 404)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass  # supervisord's log is for the program's own lines

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    return server
