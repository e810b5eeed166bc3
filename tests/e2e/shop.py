"""A small client of the shop through the gateway, for end-to-end tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import requests

from support.waiting import eventually

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@chaoslab.local", "chaoslab-admin"
ORDER = {"items": [{"sku": "book-42", "quantity": 2, "unit_price_cents": 1250}], "currency": "EUR"}


@dataclass
class Customer:
    gateway: str
    email: str
    token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def order(self, key: str | None = None, body: dict[str, Any] | None = None,
              timeout: float = 15) -> requests.Response:
        headers = {**self.auth, "Idempotency-Key": key or uuid.uuid4().hex}
        return requests.post(f"{self.gateway}/api/orders", json=body or ORDER, headers=headers, timeout=timeout)

    def notifications(self) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.gateway}/api/notifications", headers=self.auth, timeout=10)
        resp.raise_for_status()
        return resp.json()["items"]


def sign_up(gateway: str, email: str | None = None, password: str = "correct horse battery") -> Customer:
    email = email or f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    resp = requests.post(f"{gateway}/api/auth/register", json={"email": email, "password": password, "name": "E2E"},
                         timeout=10)
    assert resp.status_code == 201, resp.text
    return log_in(gateway, email, password)


def log_in(gateway: str, email: str, password: str) -> Customer:
    resp = requests.post(f"{gateway}/api/auth/login", json={"email": email, "password": password}, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return Customer(gateway, email, body["access_token"], body["refresh_token"])


def admin_get(lab: dict[str, Any], service: str, path: str) -> Any:
    """GET an admin endpoint of the first replica of a service."""
    url = lab["services"][service]["replicas"][0]["admin_url"] + path
    resp = requests.get(url, headers={"Authorization": f"Bearer {lab['admin_token']}"}, timeout=10)
    resp.raise_for_status()
    return resp.json()


def wait_for(predicate: Any, timeout_s: float = 20, interval_s: float = 0.25, what: str = "condition") -> Any:
    return eventually(predicate, timeout_s, interval_s, what)
