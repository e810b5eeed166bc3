"""The shop end to end through the gateway of a real native lab (real processes, the lab's RabbitMQ)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import make_url

from chaoslab.clients.admin import AdminClient
from chaoslab.clients.shop import Customer, ShopClient
from support.lab import run_chaoslab
from support.waiting import eventually


def sign_up(gateway: str) -> Customer:
    return ShopClient(gateway).sign_up(password="correct horse battery", name="E2E")

pytestmark = pytest.mark.lab


def test_an_order_is_paid_stored_and_notified(shop: dict[str, Any]) -> None:
    customer = sign_up(shop["gateway_url"])
    resp = customer.place_order()
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert order["status"] and order["payment_id"] and order["total_cents"] == 2500

    payments = AdminClient.of(shop).service_audit(shop, "payments")["items"]
    assert [p for p in payments if p["payment_id"] == order["payment_id"]], "the payment is not stored"
    got = requests.get(f"{shop['gateway_url']}/api/orders/{order['id']}", headers=customer.auth, timeout=10)
    assert got.status_code == 200 and got.json()["id"] == order["id"]
    notes = eventually(lambda: [n for n in customer.notifications() if n["order_id"] == order["id"]],
                       timeout_s=20, every_s=0.25, what="the order's notification")
    assert len(notes) == 1


def test_a_replayed_idempotency_key_returns_the_same_order_and_charges_once(shop: dict[str, Any]) -> None:
    customer = sign_up(shop["gateway_url"])
    key = uuid.uuid4().hex
    first = customer.place_order(key=key)
    again = customer.place_order(key=key)
    assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    payments = AdminClient.of(shop).service_audit(shop, "payments")["items"]
    assert len([p for p in payments if p["payment_id"] == first.json()["payment_id"]]) == 1
    mine = requests.get(f"{shop['gateway_url']}/api/orders", headers=customer.auth, timeout=10).json()["items"]
    assert len(mine) == 1


def _auth_signing_key(lab: dict[str, Any]) -> tuple[str, str]:
    """The lab's real signing key, read from auth's own database (tests may look inside the lab)."""
    query = "SELECT kid, private_pem FROM signing_keys WHERE slot = 'current'"
    template = lab.get("database_url_template")
    if not template:
        with sqlite3.connect(Path(lab["state_dir"]) / "data" / "auth.db") as conn:
            kid, pem = conn.execute(query).fetchone()
        return kid, pem

    async def fetch() -> tuple[str, str]:
        import asyncpg

        url = make_url(template.format(service="auth"))
        conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
        try:
            row = await conn.fetchrow(query)
        finally:
            await conn.close()
        return row["kid"], row["private_pem"]

    return asyncio.run(fetch())


def _claims(customer_token: str, **over: Any) -> dict[str, Any]:
    claims = jwt.decode(customer_token, options={"verify_signature": False})
    claims.update(over)
    return claims


def test_bad_tokens_get_401(shop: dict[str, Any]) -> None:
    gw = shop["gateway_url"]
    customer = sign_up(gw)
    kid, pem = _auth_signing_key(shop)
    now = int(time.time())
    # the real key, so only the expiry can be the reason
    expired = jwt.encode(_claims(customer.token, iat=now - 120, exp=now - 60), pem, algorithm="RS256",
                         headers={"kid": kid})
    head, payload, sig = customer.token.split(".")
    forged_payload = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload["roles"] = ["admin"]
    tampered = ".".join([head, base64.urlsafe_b64encode(json.dumps(forged_payload).encode()).rstrip(b"=").decode(),
                         sig])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_signer = jwt.encode(_claims(customer.token), other_key, algorithm="RS256", headers={"kid": kid})
    alg_none = jwt.encode(_claims(customer.token), None, algorithm="none")
    assert requests.get(f"{gw}/api/users/me", headers=customer.auth, timeout=10).status_code == 200
    for name, token in [("expired", expired), ("tampered", tampered), ("wrongly signed", wrong_signer),
                        ("alg none", alg_none), ("garbage", "not.a.token")]:
        resp = requests.get(f"{gw}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 401, f"{name}: {resp.status_code} {resp.text}"
        assert resp.headers["Content-Type"].startswith("application/problem+json"), name
        assert resp.json()["status"] == 401
    assert requests.get(f"{gw}/api/orders", timeout=10).status_code == 401  # no token at all


def test_roles_are_enforced(shop: dict[str, Any]) -> None:
    gw = shop["gateway_url"]
    customer = sign_up(gw)
    assert requests.get(f"{gw}/api/users", headers=customer.auth, timeout=10).status_code == 403
    admin = ShopClient(gw).log_in(shop["admin_account"]["email"], shop["admin_account"]["password"])
    resp = requests.get(f"{gw}/api/users", headers=admin.auth, timeout=10)
    assert resp.status_code == 200 and isinstance(resp.json()["items"], list)


def test_bad_input_gets_a_problem_body(shop: dict[str, Any]) -> None:
    gw = shop["gateway_url"]
    customer = sign_up(gw)
    headers = {**customer.auth, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    malformed = requests.post(f"{gw}/api/orders", data=b'{"items": [', headers=headers, timeout=10)
    unknown = requests.post(f"{gw}/api/orders", json={"items": [], "currency": "EUR", "coupon": "FREE"},
                            headers=headers, timeout=10)
    no_key = requests.post(f"{gw}/api/orders", json={"items": [{"sku": "book-42", "quantity": 1}],
                           "currency": "EUR"}, headers=customer.auth, timeout=10)
    for resp in (malformed, unknown, no_key):
        assert resp.status_code == 400, resp.text
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert resp.json()["status"] == 400 and resp.json()["title"]
    huge = requests.patch(f"{gw}/api/users/me", data=b'{"name": "' + b"x" * 200_000 + b'"}',
                          headers={**customer.auth, "Content-Type": "application/json"}, timeout=10)
    assert huge.status_code == 413 and huge.json()["status"] == 413


def test_rate_limiting_answers_429_with_retry_after(shop: dict[str, Any]) -> None:
    """One client faster than its bucket refills (50/s after a burst of 100 by default) must meet 429s."""
    gw = shop["gateway_url"]
    customer = sign_up(gw)
    responses: list[requests.Response] = []
    with requests.Session() as http, ThreadPoolExecutor(16) as pool:
        def hit(_: int) -> requests.Response:
            return http.get(f"{gw}/api/users/me", headers=customer.auth, timeout=10)

        # Batches until the limiter answers, bounded: how fast this machine can send decides how many it takes.
        while len(responses) < 3000 and not any(r.status_code == 429 for r in responses):
            responses += list(pool.map(hit, range(200)))
    limited = [r for r in responses if r.status_code == 429]
    assert limited, f"no 429 in {len(responses)} requests: {sorted({r.status_code for r in responses})}"
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["status"] == 429
    assert {r.status_code for r in responses} <= {200, 429}


def test_a_killed_payments_replica_loses_no_acknowledged_order(shop: dict[str, Any]) -> None:
    """SIGKILL one of two payments replicas in the middle of a stream of orders: every order that was answered
    201 has exactly one payment and one notification, and supervisord brings the replica back by itself."""
    replicas = shop["services"]["payments"]["replicas"]
    assert len(replicas) >= 2, "the shop labs run two payments replicas"
    victim = replicas[0]
    customer = sign_up(shop["gateway_url"])
    acknowledged: list[dict[str, Any]] = []
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            resp = customer.place_order(timeout_s=20)
            statuses.append(resp.status_code)
            if resp.status_code == 201:
                acknowledged.append(resp.json())

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream) for _ in range(4)]
        eventually(lambda: len(acknowledged) >= 10, timeout_s=60, every_s=0.25, what="orders before the kill")
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = len(acknowledged)
        eventually(lambda: len(acknowledged) >= killed_at + 20, timeout_s=90, every_s=0.25,
                   what="orders after the kill")
        stop.set()
        for future in futures:
            future.result()

    back = eventually(lambda: _replica(shop, victim["name"], lambda r: r["pid"] != victim["pid"] and r["ready"]),
                      timeout_s=60, every_s=0.25, what=f"{victim['name']} restarted by supervisord")
    assert back["state"] == "RUNNING"
    assert set(statuses) <= {201, 503, 504}, statuses  # a failure is an honest error, never a lost order
    payments = AdminClient.of(shop).service_audit(shop, "payments")["items"]
    paid = {p["payment_id"] for p in payments}
    missing = [o["id"] for o in acknowledged if o["payment_id"] not in paid]
    assert not missing, f"acknowledged orders without a payment: {missing}"
    orders = {o["id"] for o in AdminClient.of(shop).service_audit(shop, "orders")["items"]}
    assert {o["id"] for o in acknowledged} <= orders
    notified = eventually(lambda: _all_notified(customer, acknowledged), timeout_s=60, every_s=0.25,
                          what="every notification")
    assert notified


def _replica(lab: dict[str, Any], name: str, predicate: Any) -> dict[str, Any] | None:
    done = run_chaoslab("status", "--json", "--state-dir", lab["state_dir"])
    if done.returncode not in (0, 2):
        return None
    for replica in json.loads(done.stdout)["services"]["payments"]["replicas"]:
        if replica["name"] == name and predicate(replica):
            return replica
    return None


def _all_notified(customer: Customer, orders: list[dict[str, Any]]) -> bool:
    notes = customer.notifications()
    per_order: dict[str, int] = {}
    for note in notes:
        per_order[note["order_id"]] = per_order.get(note["order_id"], 0) + 1
    assert all(count == 1 for count in per_order.values()), f"duplicated notifications: {per_order}"
    return all(per_order.get(o["id"]) == 1 for o in orders)
