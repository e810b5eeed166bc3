"""The shop's public API as a client meets it through the gateway: its paths, a sample order, accounts and
tokens, orders and notifications (docs/design.md, "HTTP API").

Answers come back as `requests.Response` (a type everyone knows); `timed()` turns a call into the
{"status", "seconds"} record the probes and the order stream keep, with status 0 when no answer came.
Locust's journeys (loadtests/) speak the same API through Locust's own client, which is what measures them; they
take their paths from here.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chaoslab.errors import ClientError

REGISTER = "/api/auth/register"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
ME = "/api/users/me"
USERS = "/api/users"
ORDERS = "/api/orders"
CATALOGUE = "/api/catalogue"
NOTIFICATIONS = "/api/notifications"

DEFAULT_TIMEOUT_S = 10.0
ORDER_TIMEOUT_S = 15.0  # an order waits on users, payments (gRPC, retries) and a write


def order(*items: tuple[str, int], currency: str = "EUR") -> dict[str, Any]:
    """An order body from (sku, quantity) items: SKUs of the shop's catalogue (GET /api/catalogue), which prices
    them."""
    return {"items": [{"sku": sku, "quantity": quantity} for sku, quantity in items], "currency": currency}


# The one order every tool places when the order itself does not matter: 2 x book-42, 2 x 12.50 EUR.
SAMPLE_ORDER = order(("book-42", 2))


def timed(call: Callable[[], requests.Response]) -> dict[str, Any]:
    """One request: {"status", "seconds"} (+ "detail" for an error); status 0 when it did not complete."""
    started = time.monotonic()
    try:
        resp = call()
        status, detail = resp.status_code, resp.text[:200] if resp.status_code >= 400 else ""
    except requests.RequestException as exc:
        status, detail = 0, exc.__class__.__name__
    out: dict[str, Any] = {"status": status, "seconds": round(time.monotonic() - started, 3)}
    if detail:
        out["detail"] = detail
    return out


class ShopClient:
    """The gateway at `gateway_url`, without an account: sign-up and login."""

    def __init__(self, gateway_url: str, *, session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.http = session or requests.Session()
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.gateway_url + path, timeout=timeout_s or self.timeout_s, **kwargs)

    def register(self, email: str, password: str, name: str = "") -> requests.Response:
        return self.request("POST", REGISTER, json={"email": email, "password": password, "name": name})

    def login(self, email: str, password: str, *, timeout_s: float | None = None) -> requests.Response:
        return self.request("POST", LOGIN, json={"email": email, "password": password}, timeout_s=timeout_s)

    def log_in(self, email: str, password: str) -> Customer:
        """A logged-in customer; ClientError naming the answer when login fails."""
        resp = self.login(email, password)
        if resp.status_code != 200:
            raise ClientError(f"login of {email} failed: {resp.status_code} {resp.text[:200]}")
        body = resp.json()
        return Customer(self, email, password, str(body["access_token"]), str(body["refresh_token"]))

    def sign_up(self, email: str | None = None, password: str | None = None, name: str = "Customer") -> Customer:
        """A new account (a random e-mail and password unless given), logged in."""
        email = email or f"customer-{uuid.uuid4().hex[:10]}@example.com"
        password = password or secrets.token_urlsafe(16)
        resp = self.register(email, password, name)
        if resp.status_code != 201:
            raise ClientError(f"sign-up of {email} failed: {resp.status_code} {resp.text[:200]}")
        return self.log_in(email, password)


@dataclass
class Customer:
    """A logged-in customer: its calls carry its access token."""

    client: ShopClient
    email: str
    password: str
    token: str
    refresh_token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, *, timeout_s: float | None = None, **kwargs: Any) -> requests.Response:
        return self.client.request("GET", path, headers=self.auth, timeout_s=timeout_s, **kwargs)

    def place_order(self, body: dict[str, Any] | None = None, *, key: str | None = None,
                    timeout_s: float = ORDER_TIMEOUT_S) -> requests.Response:
        """POST /api/orders with an Idempotency-Key (a new one unless given: a replay passes the old one)."""
        headers = {**self.auth, "Idempotency-Key": key or uuid.uuid4().hex}
        return self.client.request("POST", ORDERS, json=SAMPLE_ORDER if body is None else body, headers=headers,
                                   timeout_s=timeout_s)

    def notifications(self) -> list[dict[str, Any]]:
        resp = self.get(NOTIFICATIONS)
        resp.raise_for_status()
        return list(resp.json()["items"])

    def relogin(self) -> Customer:
        """Log in again (a new access token): after a 401 in a process that outlived its token."""
        fresh = self.client.log_in(self.email, self.password)
        self.token, self.refresh_token = fresh.token, fresh.refresh_token
        return self


@dataclass
class StoredCustomer:
    """A customer whose credentials are kept in a file (0600), registered on first use and logged in once per
    process: the lab's own tools (probes, the order stream) reuse one account across runs, and keep the token
    they hold, as a real client would, through an auth outage."""

    client: ShopClient
    path: Path
    _customer: Customer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def credentials(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            pass
        creds = {"email": f"chaos-probe-{uuid.uuid4().hex[:8]}@chaoslab.local",
                 "password": secrets.token_urlsafe(16), "name": "Chaos Probe"}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(creds))
        self.path.chmod(0o600)
        return creds

    def customer(self, *, fresh: bool = False) -> Customer:
        """The logged-in customer (a new login with `fresh`); ClientError when it cannot log in."""
        with self._lock:
            if self._customer is not None and not fresh:
                return self._customer
            creds = self.credentials()
            resp = self.client.login(creds["email"], creds["password"])
            if resp.status_code == 401:  # first use in this lab (or a fresh database): sign up, then log in
                signup = self.client.register(creds["email"], creds["password"], creds.get("name", ""))
                if signup.status_code not in (201, 409):
                    raise ClientError(f"cannot register the probe customer: {signup.status_code} "
                                      f"{signup.text[:200]}")
                resp = self.client.login(creds["email"], creds["password"])
            if resp.status_code != 200:
                raise ClientError(f"the probe customer cannot log in: {resp.status_code} {resp.text[:200]}")
            body = resp.json()
            self._customer = Customer(self.client, creds["email"], creds["password"], str(body["access_token"]),
                                      str(body.get("refresh_token", "")))
            return self._customer

    def call(self, request: Callable[[Customer], requests.Response]) -> dict[str, Any]:
        """timed(request(customer)); once more with a fresh login when the answer is 401 (a token that expired in
        a long-lived process)."""
        result = timed(lambda: request(self.customer()))
        if result["status"] == 401:
            result = timed(lambda: request(self.customer(fresh=True)))
        return result
