"""Issue 22's findings, replayed against a real lab the way the hostile user found them; each test asserts that the
finding is gone. Then the JWT attack set, and the admin API without or with a wrong token on every admin port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from chaoslab.clients import shop
from chaoslab.clients.admin import replicas_of
from chaoslab.clients.shop import Customer, ShopClient
from chaoslab.lab import faults
from chaoslab.lab.probes import ready_replicas
from services import contract
from support.waiting import eventually

from .conftest import LOGIN_BLOCK_S

pytestmark = pytest.mark.lab
T = 15
PROBLEM = "application/problem+json"
BOMB = b"[" * 30_000 + b"]" * 30_000  # ~60 KB: json.loads raised RecursionError on it (a 500)


def problem(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:300]}"
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body = resp.json()
    assert body["status"] == status and body["title"]
    return dict(body)


def breaker_state(lab: dict[str, Any], service: str, upstream: str) -> float:
    """circuit_breaker_state of a service's first replica towards `upstream` (0 closed, 2 open), scraped now."""
    text = requests.get(replicas_of(lab, [service])[0]["admin_url"] + "/metrics", timeout=T).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "circuit_breaker_state" and sample.labels.get("upstream") == upstream:
                return sample.value
    raise AssertionError(f"{service} exports no breaker towards {upstream}")


def no_internal_address(text: str) -> None:
    assert "127.0.0.1" not in text and "localhost" not in text and ".chaoslab/" not in text, text


# -- 1 (high): nested JSON opened a breaker every client shares -------------------------------------------------
def test_deep_json_is_a_400_and_cannot_open_a_breaker_for_everyone(sec_lab: dict[str, Any],
                                                                    customer: Customer) -> None:
    gw = sec_lab["gateway_url"]
    for _ in range(8):  # six were enough to open the gateway's breaker to auth for every user
        no_internal_address(json.dumps(problem(requests.post(
            f"{gw}{shop.LOGIN}", data=BOMB, headers={"Content-Type": "application/json"}, timeout=T), 400)))
        problem(requests.post(f"{gw}{shop.ORDERS}", data=BOMB, timeout=T, headers={
            **customer.auth, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}), 400)
    assert breaker_state(sec_lab, "gateway", "auth") == 0
    assert breaker_state(sec_lab, "gateway", "orders") == 0
    # everybody else is served as before
    assert ShopClient(gw).login(customer.email, customer.password).status_code == 200
    assert customer.place_order().status_code == 201


# -- 2 (medium): the documented default admin ---------------------------------------------------------------------
def test_no_default_admin_works_and_the_labs_own_admin_does(sec_lab: dict[str, Any]) -> None:
    client = ShopClient(sec_lab["gateway_url"])
    problem(client.login("admin@chaoslab.local", "chaoslab-admin"), 401)
    account = sec_lab["admin_account"]
    assert account["password"] != "chaoslab-admin" and len(account["password"]) >= 20
    admin = client.log_in(account["email"], account["password"])
    assert jwt.decode(admin.token, options={"verify_signature": False})["roles"] == [contract.ADMIN]


# -- 3 (medium): the state dir gave the secrets away ------------------------------------------------------------
def test_the_state_dir_keeps_the_labs_secrets_to_its_user(sec_lab: dict[str, Any]) -> None:
    state = Path(sec_lab["state_dir"])
    assert state.stat().st_mode & 0o777 == 0o700
    secrets = (sec_lab["admin_token"], sec_lab["admin_account"]["password"])
    holders = {"lab.json", "registry.json", "supervisord.conf"}
    checked = 0
    for path in state.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue
        assert path.stat().st_mode & 0o077 == 0, f"{path}: {oct(path.stat().st_mode & 0o777)}"
        checked += 1
        if path.is_file() and path.name not in holders and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"{path} holds a secret of the lab"
    assert checked > 20
    # the signing key's database above all
    assert (state / "data" / "auth.db").stat().st_mode & 0o777 == 0o600


# -- 4 (medium): password guessing was not limited ---------------------------------------------------------------
def test_password_guessing_is_throttled_per_account(sec_lab: dict[str, Any], customer: Customer) -> None:
    client = ShopClient(sec_lab["gateway_url"])
    started = time.monotonic()
    answers = [client.login(customer.email, f"guess-{n}").status_code for n in range(8)]
    assert answers[:4] == [401] * 4 and answers[5:] == [429] * 3, answers  # the 5th failure starts the block
    throttled = problem(client.login(customer.email, customer.password), 429)  # even the right one waits
    assert throttled["type"] == "https://chaoslab.dev/problems/login-throttled"
    retry_after = int(client.login(customer.email, customer.password).headers["Retry-After"])
    assert 1 <= retry_after <= LOGIN_BLOCK_S
    assert time.monotonic() - started < 5  # refused before any password hash, so fast
    other = ShopClient(sec_lab["gateway_url"]).sign_up(password="orbit-lantern-other-1")  # others log in
    assert other.token
    time.sleep(LOGIN_BLOCK_S + 0.5)
    assert client.login(customer.email, customer.password).status_code == 200  # the block ends


def test_password_guessing_is_throttled_per_client(sec_lab: dict[str, Any]) -> None:
    client = ShopClient(sec_lab["gateway_url"])
    statuses = [client.login(f"nobody-{n}-{uuid.uuid4().hex[:6]}@example.com", "wrong-password").status_code
                for n in range(24)]
    assert 429 in statuses and statuses.index(429) <= 20, statuses  # one client, many accounts: blocked too
    time.sleep(LOGIN_BLOCK_S + 0.5)


# -- 5 (medium): users' outage cascaded into every orders route --------------------------------------------------
def test_a_users_outage_does_not_cascade_into_order_reads(sec_lab: dict[str, Any], customer: Customer) -> None:
    placed = customer.place_order(key="before-the-outage")
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    sv = faults.supervisor_of(sec_lab["state_dir"])
    users = [r["name"] for r in replicas_of(sec_lab, ["users"])]
    faults.stop_programs(sv, users)
    try:
        for _ in range(10):  # each 503 from orders (users unreachable) is an answer: no breaker failure
            failed = problem(customer.place_order(), 503)
            no_internal_address(json.dumps(failed))
        assert breaker_state(sec_lab, "gateway", "orders") == 0
        assert customer.get(shop.ORDERS).status_code == 200
        assert customer.get(f"{shop.ORDERS}/{order_id}").json()["id"] == order_id
        replay = customer.place_order(key="before-the-outage")
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    finally:
        faults.start_programs(sv, users)
        eventually(lambda: all(ready_replicas(sec_lab, "users").values()), 60, what="users back")
    # and orders recover once users is back (its own breaker to users closes after its reset time)
    eventually(lambda: customer.place_order().status_code == 201, 30, 1.0, what="orders placed again")


# -- 6 (low) ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("password", ["12345678", "password", " " * 8, "password1234", "qwertyuiop"])
def test_weak_passwords_are_refused(sec_lab: dict[str, Any], password: str) -> None:
    body = problem(ShopClient(sec_lab["gateway_url"]).register(f"w-{uuid.uuid4().hex[:8]}@example.com", password),
                   400)
    assert [e["field"] for e in body["errors"]] == ["password"], body


def test_control_characters_are_refused_in_emails(sec_lab: dict[str, Any]) -> None:
    client = ShopClient(sec_lab["gateway_url"])
    for email in ("nul\x00@example.com", "tab\t@example.com", "bell\x07x@example.com"):
        body = problem(client.register(email, "orbit-lantern-quiet-9"), 400)
        assert [e["field"] for e in body["errors"]] == ["email"], body


def test_prices_and_currencies_are_the_shops(sec_lab: dict[str, Any], customer: Customer) -> None:
    catalogue = requests.get(sec_lab["gateway_url"] + shop.CATALOGUE, timeout=T).json()
    price = {p["sku"]: p["prices"] for p in catalogue["items"]}
    priced_by_the_client = {"items": [{"sku": "book-42", "quantity": 1, "unit_price_cents": 0}], "currency": "EUR"}
    for body, field in ((priced_by_the_client, "items.0.unit_price_cents"),
                        (shop.order(("no-such-thing", 1)), "items.0.sku"),
                        (shop.order(("book-42", 1), currency="XAU"), "currency")):
        errors = problem(customer.place_order(body), 400)["errors"]
        assert [e["field"] for e in errors] == [field], errors
    placed = customer.place_order(shop.order(("book-42", 2), ("sticker", 3), currency="USD"))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["total_cents"] == 2 * price["book-42"]["USD"] + 3 * price["sticker"]["USD"]
    assert [i["unit_price_cents"] for i in order["items"]] == [price["book-42"]["USD"], price["sticker"]["USD"]]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=T) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_http_gets_a_problem_and_no_log_line_holds_a_token(sec_lab: dict[str, Any],
                                                                     customer: Customer) -> None:
    port = int(sec_lab["gateway_url"].rsplit(":", 1)[1])
    answer = _raw(port, b"GET /api/users/me HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer "
                  + customer.token.encode() + b"\x00\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/problem+json" in head, answer[:300]
    assert json.loads(body)["detail"] == "the request is not valid HTTP"
    assert customer.get(shop.ME).status_code == 200  # the token in an ordinary request, too
    time.sleep(1.5)  # log lines are flushed at once, spans within a second
    logs = Path(sec_lab["state_dir"]) / "logs"
    checked = [p for p in logs.glob("*.log")]
    assert checked
    for path in checked:
        assert customer.token not in path.read_text(errors="replace"), f"{path} holds a bearer token"


def test_crash_with_a_malformed_body_is_a_400_and_crashes_nothing(sec_lab: dict[str, Any]) -> None:
    replica = replicas_of(sec_lab, ["users"])[0]
    before = faults.supervisor_of(sec_lab["state_dir"]).process(replica["name"])["pid"]
    resp = requests.post(replica["admin_url"] + "/admin/crash", data=b"{", timeout=T,
                         headers={"Authorization": f"Bearer {sec_lab['admin_token']}",
                                  "Content-Type": "application/json"})
    problem(resp, 400)
    time.sleep(0.5)
    assert faults.supervisor_of(sec_lab["state_dir"]).process(replica["name"])["pid"] == before


def test_a_reused_refresh_token_revokes_its_family(sec_lab: dict[str, Any], customer: Customer) -> None:
    client = customer.client
    first = customer.refresh_token
    renewed = client.request("POST", shop.REFRESH, json={"refresh_token": first})
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()["refresh_token"]
    reused = problem(client.request("POST", shop.REFRESH, json={"refresh_token": first}), 401)
    assert "used before" in reused["detail"]
    problem(client.request("POST", shop.REFRESH, json={"refresh_token": second}), 401)  # the family is revoked
    assert client.log_in(customer.email, customer.password).token  # a new login starts a new family


# -- the JWT attack set -------------------------------------------------------------------------------------------
def _signing_key(lab: dict[str, Any]) -> tuple[str, Any]:
    with sqlite3.connect(Path(lab["state_dir"]) / "data" / "auth.db") as conn:
        kid, pem = conn.execute("SELECT kid, private_pem FROM signing_keys").fetchone()
    return kid, serialization.load_pem_private_key(pem.encode(), password=None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_jwt_attack_set_is_refused(sec_lab: dict[str, Any], customer: Customer) -> None:
    kid, key = _signing_key(sec_lab)
    claims = jwt.decode(customer.token, options={"verify_signature": False})
    now = int(time.time())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(over: dict[str, Any], *, signer: Any = key, header_kid: str = kid) -> str:
        return jwt.encode({**claims, **over}, signer, algorithm="RS256", headers={"kid": header_kid})

    head, payload, sig = customer.token.split(".")
    tampered = ".".join([head, _b64(json.dumps({**claims, "roles": ["admin"]}).encode()), sig])
    confused = ".".join([_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()),
                         _b64(json.dumps(claims).encode())])
    confused += "." + _b64(hmac.new(public_pem, confused.encode(), hashlib.sha256).digest())
    attacks = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "key confusion (HS256 keyed with the public key)": confused,
        "expired": signed({"iat": now - 120, "exp": now - 60}),
        "not yet valid": signed({"nbf": now + 600}),
        "tampered": tampered,
        "unknown kid": signed({}, header_kid="not-a-kid-of-the-lab"),
        "wrong issuer": signed({"iss": "https://evil.example"}),
        "wrong audience": signed({"aud": "someone-else"}),
        "a key that is not the lab's": signed({}, signer=foreign),
        "a refresh token": customer.refresh_token,
    }
    gw = sec_lab["gateway_url"]
    assert requests.get(gw + shop.ME, headers=customer.auth, timeout=T).status_code == 200
    for name, token in attacks.items():
        resp = requests.get(gw + shop.ME, headers={"Authorization": f"Bearer {token}"}, timeout=T)
        assert resp.status_code == 401, f"{name}: {resp.status_code} {resp.text[:200]}"
        problem(resp, 401)


# -- the admin API: every admin port, without or with a wrong token ----------------------------------------------
ADMIN_ROUTES = (("GET", "/admin/faults"), ("POST", "/admin/faults"), ("DELETE", "/admin/faults"),
                ("DELETE", "/admin/faults/abc"), ("POST", "/admin/crash"), ("GET", "/admin/audit"))


def test_the_admin_api_needs_its_token_on_every_admin_port(sec_lab: dict[str, Any]) -> None:
    checked = 0
    for replica in replicas_of(sec_lab):
        for method, path in ADMIN_ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong-token"},
                            {"Authorization": f"Basic {sec_lab['admin_token']}"}):
                resp = requests.request(method, replica["admin_url"] + path, headers=headers, timeout=T,
                                        json={"kind": "error"} if method == "POST" else None)
                problem(resp, 401)
                checked += 1
    assert checked == len(replicas_of(sec_lab)) * len(ADMIN_ROUTES) * 3 >= 6 * 6 * 3
    # and nothing was crashed or injected through all that
    assert all(all(ready_replicas(sec_lab, s).values()) for s in contract.SERVICE_NAMES)
