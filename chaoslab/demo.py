"""`chaoslab demo`: start the lab when it is not running, then walk one order through the shop and show what
happened at each hop: the answer, the payment, the event, the notification, the trace and the log lines."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.console import Console
from rich.table import Table

from chaoslab.lab.paths import DEFAULT_STATE_DIR, LabPaths
from chaoslab.lab.ports import DEFAULT_BASE_PORT
from chaoslab.observability.traces import log_lines_of, spans_of, waterfall

out = Console(width=max(Console().width, 140))  # room for the waterfall and whole trace ids
err = Console(stderr=True)

ORDER = {"items": [{"sku": "chaos-engineering-book", "quantity": 1, "unit_price_cents": 3900},
                   {"sku": "sticker", "quantity": 3, "unit_price_cents": 150}], "currency": "EUR"}


class DemoFailed(Exception):
    """A step of the walk-through did not do what it should; the message says which and what came back."""


class Walk:
    def __init__(self, lab: dict[str, Any]) -> None:
        self.lab = lab
        self.gw = lab["gateway_url"]
        self.http = requests.Session()
        self.rows: list[list[str]] = []

    @property
    def table(self) -> Table:
        table = Table("step", "answer", "ms", "what happened", title="one order through the shop")
        for row in self.rows:
            table.add_row(*row)
        return table

    def step(self, name: str, method: str, path: str, expect: int, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        resp = self.http.request(method, self.gw + path, timeout=15, **kwargs)
        ms = f"{(time.perf_counter() - started) * 1000:.0f}"
        if resp.status_code != expect:
            self.rows.append([name, f"[red]{resp.status_code}[/]", ms, resp.text[:200]])
            raise DemoFailed(f"{name}: expected {expect}, got {resp.status_code}: {resp.text[:300]}")
        self.rows.append([name, f"[green]{resp.status_code}[/]", ms, ""])
        return resp

    def note(self, text: str) -> None:
        self.rows[-1][3] = text  # the step just taken gets its story

    def admin(self, service: str, path: str) -> Any:
        url = self.lab["services"][service]["replicas"][0]["admin_url"] + path
        resp = self.http.get(url, headers={"Authorization": f"Bearer {self.lab['admin_token']}"}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def run(self) -> str:
        email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
        self.step("register", "POST", "/api/auth/register", 201,
                  json={"email": email, "password": "chaoslab demo password", "name": "Demo Customer"})
        self.note(f"auth stored {email} (argon2id hash)")
        tokens = self.step("log in", "POST", "/api/auth/login", 200,
                           json={"email": email, "password": "chaoslab demo password"}).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        self.note(f"RS256 access token, valid {tokens['expires_in']} s")
        self.step("profile", "GET", "/api/users/me", 200, headers=auth)
        self.note("gateway verified the token with auth's cached JWKS; users created the profile")
        key = uuid.uuid4().hex
        order_resp = self.step("place order", "POST", "/api/orders", 201, json=ORDER,
                               headers={**auth, "Idempotency-Key": key})
        order = order_resp.json()
        trace_id = order_resp.headers.get("X-Trace-Id", "")
        self.note(f"order {order['id'][:8]}… {order['total_cents'] / 100:.2f} {order['currency']}, "
                  f"payment {str(order['payment_id'])[:8]}… (gRPC), outbox event in the same transaction")
        replay = self.step("retry (same key)", "POST", "/api/orders", 200, json=ORDER,
                           headers={**auth, "Idempotency-Key": key})
        if replay.json()["id"] != order["id"]:
            raise DemoFailed("the replay returned another order")
        self.note("same order back (Idempotent-Replayed: true), no second charge")
        payments = [p for p in self.admin("payments", "/admin/audit")["items"]
                    if p["payment_id"] == order["payment_id"]]
        if len(payments) != 1:
            raise DemoFailed(f"payments holds {len(payments)} payments for the order, not 1")
        deadline = time.monotonic() + 20
        notes: list[dict[str, Any]] = []
        while not notes:
            resp = self.step("notifications", "GET", "/api/notifications", 200, headers=auth)
            notes = [n for n in resp.json()["items"] if n["order_id"] == order["id"]]
            if notes or time.monotonic() > deadline:
                break
            self.rows.pop()  # only the poll that found it is shown
            time.sleep(0.3)
        if not notes:
            raise DemoFailed("no notification for the order within 20 s (is the broker up? chaoslab status)")
        self.note(f"outbox → RabbitMQ → notifications: \"{notes[0]['message']}\"")
        return trace_id


def _ensure_lab(state_dir: Path, base_port: int) -> dict[str, Any]:
    from chaoslab.cli import RichReporter, _progress
    from chaoslab.lab import control
    from chaoslab.lab.spec import default_replicas
    from chaoslab.lab.supervisor import Supervisor

    paths = LabPaths.of(state_dir)
    if paths.lab_json.exists() and Supervisor(paths).is_running():
        out.print(f"using the lab running in {paths.state}")
        return control.status(state_dir).registry
    out.print(f"starting a lab in {paths.state} (base port {base_port})")
    with _progress() as progress:
        return control.up(state_dir, base_port, default_replicas(), reporter=RichReporter(progress))


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: chaoslab demo   (then: chaoslab status; chaoslab down)\n\n"
                 "The lab keeps running afterwards, so you can look around.")
    def demo(
        state_dir: Annotated[Path, typer.Option("--state-dir", envvar="CHAOSLAB_STATE_DIR", show_envvar=True,
                                                help="The lab's state dir.")] = Path(DEFAULT_STATE_DIR),
        base_port: Annotated[int, typer.Option(envvar="CHAOSLAB_BASE_PORT", show_envvar=True,
                                               help="Base port when a lab has to be started.")]
        = DEFAULT_BASE_PORT,
    ) -> None:
        """Start the lab if needed and walk one order through it, showing every hop, its trace and its logs."""
        from chaoslab.cli import lab_errors

        with lab_errors():
            lab = _ensure_lab(state_dir, base_port)
        walk = Walk(lab)
        try:
            trace_id = walk.run()
        except (DemoFailed, requests.RequestException) as exc:
            out.print(walk.table)
            err.print(f"[red]the walk-through failed[/]: {exc}\nlook at: chaoslab status; chaoslab logs orders")
            raise typer.Exit(1) from None
        out.print(walk.table)
        paths = LabPaths.of(lab["state_dir"])
        if trace_id:
            spans: list[dict[str, Any]] = []
            deadline = time.monotonic() + 5  # spans are exported in batches about every second
            while time.monotonic() < deadline:
                spans = spans_of(paths.spans, trace_id)
                if {s.get("service") for s in spans} >= {"gateway", "orders", "payments", "users"}:
                    break
                time.sleep(0.5)
            if spans:
                out.print(waterfall(spans))
            lines = log_lines_of(paths.logs, trace_id)
            out.print(f"{len(lines)} log lines carry this trace: chaoslab logs --trace {trace_id}")
        out.print(f"[green]the order went through[/]. Gateway: {lab['gateway_url']}  Prometheus: "
                  f"{lab['prometheus_url']}  Alertmanager: {lab['alertmanager_url']}\n"
                  "Next: chaoslab status; chaoslab traces --slowest 5; chaoslab down", highlight=False)
