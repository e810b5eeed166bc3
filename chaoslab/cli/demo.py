"""`chaoslab demo`: start the lab when it is not running, then walk one order through the shop and show what
happened at each hop: the answer, the payment, the event, the notification, the trace and the log lines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
import typer
from rich.table import Table

from chaoslab.cli.console import RichReporter, err, errors, progress
from chaoslab.cli.console import wide as out
from chaoslab.cli.options import STATE_DIR, StartBasePort, StateDir
from chaoslab.clients import shop
from chaoslab.clients.admin import AdminClient
from chaoslab.errors import ChaoslabError
from chaoslab.lab import control
from chaoslab.lab.paths import LabPaths
from chaoslab.observability.traces import log_lines_of, spans_of, waterfall

app = typer.Typer()

DEMO_PASSWORD = "chaoslab demo password"
ORDER = shop.order(("chaos-engineering-book", 1), ("sticker", 3))
NOTIFICATION_WAIT_S = 20.0


class DemoFailed(ChaoslabError):
    """A step of the walk-through did not do what it should; the message says which and what came back."""


class Walk:
    def __init__(self, lab: dict[str, Any]) -> None:
        self.lab = lab
        self.client = shop.ShopClient(lab["gateway_url"], timeout_s=15)
        self.admin = AdminClient.of(lab)
        self.rows: list[list[str]] = []

    @property
    def table(self) -> Table:
        table = Table("step", "answer", "ms", "what happened", title="one order through the shop")
        for row in self.rows:
            table.add_row(*row)
        return table

    def step(self, name: str, expect: int, call: Callable[[], requests.Response]) -> requests.Response:
        started = time.perf_counter()
        resp = call()
        ms = f"{(time.perf_counter() - started) * 1000:.0f}"
        if resp.status_code != expect:
            self.rows.append([name, f"[red]{resp.status_code}[/]", ms, resp.text[:200]])
            raise DemoFailed(f"{name}: expected {expect}, got {resp.status_code}: {resp.text[:300]}")
        self.rows.append([name, f"[green]{resp.status_code}[/]", ms, ""])
        return resp

    def note(self, text: str) -> None:
        self.rows[-1][3] = text  # the step just taken gets its story

    def run(self) -> str:
        email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
        self.step("register", 201, lambda: self.client.register(email, DEMO_PASSWORD, "Demo Customer"))
        self.note(f"auth stored {email} (argon2id hash)")
        tokens = self.step("log in", 200, lambda: self.client.login(email, DEMO_PASSWORD)).json()
        customer = shop.Customer(self.client, email, DEMO_PASSWORD, tokens["access_token"], tokens["refresh_token"])
        self.note(f"RS256 access token, valid {tokens['expires_in']} s")
        self.step("profile", 200, lambda: customer.get(shop.ME))
        self.note("gateway verified the token with auth's cached JWKS; users created the profile")
        key = uuid.uuid4().hex
        order_resp = self.step("place order", 201, lambda: customer.place_order(ORDER, key=key))
        order = order_resp.json()
        trace_id = order_resp.headers.get("X-Trace-Id", "")
        self.note(f"order {order['id'][:8]}… {order['total_cents'] / 100:.2f} {order['currency']}, "
                  f"payment {str(order['payment_id'])[:8]}… (gRPC), outbox event in the same transaction")
        replay = self.step("retry (same key)", 200, lambda: customer.place_order(ORDER, key=key))
        if replay.json()["id"] != order["id"]:
            raise DemoFailed("the replay returned another order")
        self.note("same order back (Idempotent-Replayed: true), no second charge")
        audit = self.admin.service_audit(self.lab, "payments")
        payments = [p for p in audit["items"] if p["payment_id"] == order["payment_id"]]
        if len(payments) != 1:
            raise DemoFailed(f"payments holds {len(payments)} payments for the order, not 1")
        deadline = time.monotonic() + NOTIFICATION_WAIT_S
        notes: list[dict[str, Any]] = []
        while not notes:
            resp = self.step("notifications", 200, lambda: customer.get(shop.NOTIFICATIONS))
            notes = [n for n in resp.json()["items"] if n["order_id"] == order["id"]]
            if notes or time.monotonic() > deadline:
                break
            self.rows.pop()  # only the poll that found it is shown
            time.sleep(0.3)
        if not notes:
            raise DemoFailed(f"no notification for the order within {NOTIFICATION_WAIT_S:g} s "
                             "(is the broker up? chaoslab status)")
        self.note(f"outbox → RabbitMQ → notifications: \"{notes[0]['message']}\"")
        return trace_id


def _show_trace(lab: dict[str, Any], trace_id: str) -> None:
    paths = LabPaths.of(lab["state_dir"])
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


@app.command(epilog="Example: chaoslab demo   (then: chaoslab status; chaoslab down)\n\n"
             "The lab keeps running afterwards, so you can look around.")
def demo(state_dir: StateDir = STATE_DIR, base_port: StartBasePort = None) -> None:
    """Start the lab if needed and walk one order through it, showing every hop, its trace and its logs."""
    with errors():
        if control.is_running(state_dir):
            out.print(f"using the lab running in {LabPaths.of(state_dir).state}")
        else:
            out.print(f"starting a lab in {LabPaths.of(state_dir).state}")
        with progress() as bar:
            lab = control.ensure_running(state_dir, base_port, reporter=RichReporter(bar)).registry
    walk = Walk(lab)
    try:
        trace_id = walk.run()
    except (ChaoslabError, requests.RequestException) as exc:
        out.print(walk.table)
        err.print(f"[red]the walk-through failed[/]: {exc}\nlook at: chaoslab status; chaoslab logs orders")
        raise typer.Exit(1) from None
    out.print(walk.table)
    if trace_id:
        _show_trace(lab, trace_id)
    out.print(f"[green]the order went through[/]. Gateway: {lab['gateway_url']}  Prometheus: "
              f"{lab['prometheus_url']}  Alertmanager: {lab['alertmanager_url']}\n"
              "Next: chaoslab status; chaoslab traces --slowest 5; chaoslab down", highlight=False)
