"""A small client of the shop through the gateway, for probes that act as a customer.

The probe customer's credentials are kept in STATE/chaos/customer.json so that every run of every experiment
reuses one account, and its access token is kept in memory for the life of the `chaos run` process: an auth
outage experiment logs in before the outage and goes on with the token it already holds, as a real client would.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from chaoslib.exceptions import ActivityFailed

ORDER = {"items": [{"sku": "chaos-probe", "quantity": 1, "unit_price_cents": 990}], "currency": "EUR"}
_tokens: dict[str, str] = {}  # gateway URL -> access token
_lock = threading.Lock()


def _credentials(state: Path) -> dict[str, str]:
    path = state / "chaos" / "customer.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
    creds = {"email": f"chaos-probe-{uuid.uuid4().hex[:8]}@chaoslab.local",
             "password": secrets.token_urlsafe(16), "name": "Chaos Probe"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def login(gateway: str, email: str, password: str, timeout_s: float = 10.0) -> requests.Response:
    return requests.post(f"{gateway}/api/auth/login", json={"email": email, "password": password},
                         timeout=timeout_s)


def token(reg: dict[str, Any], *, fresh: bool = False) -> str:
    """The probe customer's access token: registered on first use, logged in once per process."""
    gateway = str(reg["gateway_url"])
    with _lock:
        if not fresh and gateway in _tokens:
            return _tokens[gateway]
        creds = _credentials(Path(reg["state_dir"]))
        resp = login(gateway, creds["email"], creds["password"])
        if resp.status_code == 401:  # first use in this lab (or a fresh database): sign up, then log in
            signup = requests.post(f"{gateway}/api/auth/register", json=creds, timeout=10)
            if signup.status_code not in (201, 409):
                raise ActivityFailed(f"cannot register the probe customer: {signup.status_code} {signup.text[:200]}")
            resp = login(gateway, creds["email"], creds["password"])
        if resp.status_code != 200:
            raise ActivityFailed(f"the probe customer cannot log in: {resp.status_code} {resp.text[:200]}")
        _tokens[gateway] = str(resp.json()["access_token"])
        return _tokens[gateway]


def timed(method: str, url: str, timeout_s: float, **kwargs: Any) -> dict[str, Any]:
    """One request: {"status", "seconds"}; status 0 when it did not complete (timeout, reset)."""
    started = time.monotonic()
    try:
        resp = requests.request(method, url, timeout=timeout_s, **kwargs)
        status, detail = resp.status_code, resp.text[:200] if resp.status_code >= 400 else ""
    except requests.RequestException as exc:
        status, detail = 0, exc.__class__.__name__
    out: dict[str, Any] = {"status": status, "seconds": round(time.monotonic() - started, 3)}
    if detail:
        out["detail"] = detail
    return out


def _as_customer(reg: dict[str, Any], call: Any) -> dict[str, Any]:
    """Call with the cached token; once more with a fresh one if it expired (401) in a long-lived process."""
    result = call(token(reg))
    if result["status"] == 401:
        result = call(token(reg, fresh=True))
    return dict(result)


def place_order(reg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    def call(access: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access}", "Idempotency-Key": uuid.uuid4().hex}
        return timed("POST", f"{reg['gateway_url']}/api/orders", timeout_s, json=ORDER, headers=headers)

    return _as_customer(reg, call)


def customer_login(reg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    creds = _credentials(Path(reg["state_dir"]))
    return timed("POST", f"{reg['gateway_url']}/api/auth/login", timeout_s,
                 json={"email": creds["email"], "password": creds["password"]})


def get(reg: dict[str, Any], path: str, timeout_s: float) -> dict[str, Any]:
    return _as_customer(reg, lambda access: timed("GET", f"{reg['gateway_url']}{path}", timeout_s,
                                                  headers={"Authorization": f"Bearer {access}"}))
