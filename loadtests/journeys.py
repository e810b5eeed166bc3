"""The shop's users as Locust user classes (FastHttpUser: geventhttpclient, several times the requests per
core of HttpUser, which matters when the generator shares 2 cores with the shop).

Every simulated user signs up and logs in once (its own account: the gateway rate-limits per token subject, so
users never share a bucket) and reuses the token, refreshing it before it expires (soak runs outlive the 15-minute
access token). Requests are named by route template ("/api/orders/{id}"), so the statistics stay grouped; any
status other than the expected one, 429 included, is a failure with the status and the problem's title in it.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections import deque
from typing import Any

import gevent
from locust import between, constant, constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager

from chaoslab.clients import shop

log = logging.getLogger("chaoslab.load")
REFRESH_AT = 0.8  # refresh the access token after 80% of its lifetime
REPLAY_MEMORY = 20  # orders a shopper remembers, to replay one or look one up
# After a failed sign-up or login, wait before the next try: a user without an account must not spin on argon2.
ACCOUNT_RETRY_S = 1.0
BACKOFF_S = 1.0  # after a 429 or 503 without Retry-After
MAX_BACKOFF_S = 5.0



def admin_credentials() -> tuple[str, str] | None:
    """The shop admin's account (BOOTSTRAP_ADMIN, "email:password": `chaoslab load` passes the lab's; compose and
    Kubernetes set it from their secrets). None when unset: there is no default admin account."""
    email, sep, password = os.environ.get("BOOTSTRAP_ADMIN", "").partition(":")
    return (email, password) if sep and email and password else None


def order_body(skus: list[str]) -> dict[str, Any]:
    """One to three products of the catalogue, one to three of each; the shop prices them."""
    picks = random.sample(skus, k=random.randint(1, min(3, len(skus))))
    return {"items": [{"sku": sku, "quantity": random.randint(1, 3)} for sku in picks], "currency": "EUR"}


def problem(response: Any) -> str:
    """"HTTP 429 Too Many Requests: ..." from a response, for failure messages that say what went wrong."""
    status = getattr(response, "status_code", 0)
    if not status:
        return f"no response: {getattr(response, 'error', None) or 'connection failed'}"
    title = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            title = f"{body.get('title', '')}: {body.get('detail', '')}".strip(": ")
    except Exception:  # not JSON (a proxy's HTML page, an empty body): the status says enough
        pass
    return f"HTTP {status} {title}".strip()


def expect(response: ResponseContextManager, *statuses: int) -> bool:
    """Mark the response a success when its status is one of `statuses`, else a failure; True on success."""
    if response.status_code in statuses:
        response.success()
        return True
    response.failure(problem(response))
    return False


class ShopUser(FastHttpUser):
    """Base for every persona: an account, a token, and authenticated calls."""

    abstract = True
    # A request that takes longer than this is a failure, not a hung user: chaos experiments stall services.
    network_timeout = 10.0
    connection_timeout = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = ""
        self.password = ""
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.refresh_after = 0.0
        self.registered = False
        self.skus: list[str] = []

    # -- account ----------------------------------------------------------------------------------------------
    def sign_up(self) -> bool:
        self.email = f"load-{uuid.uuid4().hex[:16]}@load.chaoslab.local"
        self.password = uuid.uuid4().hex
        body = {"email": self.email, "password": self.password, "name": f"Load {self.email[5:11]}"}
        with self.client.post(shop.REGISTER, json=body, name=shop.REGISTER,
                              catch_response=True) as r:
            self.registered = expect(r, 201)
        return self.registered

    def log_in(self) -> bool:
        body = {"email": self.email, "password": self.password}
        with self.client.post(shop.LOGIN, json=body, name=shop.LOGIN, catch_response=True) as r:
            if expect(r, 200):
                return self._keep_tokens(r)
        return False

    def _keep_tokens(self, response: ResponseContextManager) -> bool:
        try:
            data = response.json()
            self.access_token, self.refresh_token = data["access_token"], data.get("refresh_token")
            self.refresh_after = time.monotonic() + REFRESH_AT * float(data.get("expires_in", 900))
        except (ValueError, KeyError, TypeError):
            response.failure("login answer without access_token")
            self.access_token = None
            return False
        return True

    def ensure_token(self) -> bool:
        """A valid access token: sign up or log in again after a failure, refresh one that is about to expire."""
        if self.access_token is None:
            if (self.registered or self.sign_up()) and self.log_in():
                return True
            gevent.sleep(ACCOUNT_RETRY_S)
            return False
        if time.monotonic() >= self.refresh_after and self.refresh_token:
            with self.client.post(shop.REFRESH, json={"refresh_token": self.refresh_token},
                                  name=shop.REFRESH, catch_response=True) as r:
                if expect(r, 200):
                    return self._keep_tokens(r)
            self.access_token = None
            return self.log_in()
        return True

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", **extra}

    def seen_unauthorized(self, response: ResponseContextManager) -> None:
        if response.status_code == 401:
            self.access_token = None  # auth restarted with new keys, or the token expired: log in next time

    def on_start(self) -> None:
        if self.sign_up():
            self.log_in()

    def catalogue(self) -> list[str]:
        """The SKUs the shop sells, read once per user (GET /api/catalogue, public), as a shopper browses first."""
        if not self.skus:
            with self.client.get(shop.CATALOGUE, name=shop.CATALOGUE, catch_response=True) as r:
                if expect(r, 200):
                    items = _field(r, "items")
                    self.skus = [str(i["sku"]) for i in items] if isinstance(items, list) else []
                    if not self.skus:
                        r.failure("a catalogue without products")
        return self.skus


class OrderingMixin:
    """Placing orders with a fresh Idempotency-Key, and replaying one as a client retrying after a timeout."""

    client: Any
    recent: deque[tuple[str, dict[str, Any], str]]

    def place_order(self: Any) -> None:
        skus = self.catalogue()
        if not skus:
            return
        key, body = str(uuid.uuid4()), order_body(skus)
        with self.client.post(shop.ORDERS, json=body, headers=self.headers(**{"Idempotency-Key": key}),
                              name=shop.ORDERS, catch_response=True) as r:
            self.seen_unauthorized(r)
            # 200 + Idempotent-Replayed for a fresh key: the shop retried the request internally (the gateway after
            # an upstream timeout) and the retry found the order the first attempt placed. Placed once: a success.
            replayed = r.status_code == 200 and _replayed(r)
            if replayed:
                r.success()
            if replayed or expect(r, 201):
                order_id = _field(r, "id")
                if order_id is None:
                    r.failure(f"{r.status_code} without an order id")
                else:
                    self.recent.append((key, body, order_id))
            back_off(r)

    def replay_order(self: Any) -> None:
        """The same key and body again: the answer must be 200, Idempotent-Replayed: true and the same order."""
        if not self.recent:
            return self.place_order()
        key, body, order_id = random.choice(self.recent)
        with self.client.post(shop.ORDERS, json=body, headers=self.headers(**{"Idempotency-Key": key}),
                              name=f"{shop.ORDERS} (replay)", catch_response=True) as r:
            self.seen_unauthorized(r)
            if not expect(r, 200):
                return None
            if not _replayed(r):
                header = (r.headers or {}).get("Idempotent-Replayed", "")
                r.failure(f"replay answered without Idempotent-Replayed: true (got {header!r})")
            elif _field(r, "id") != order_id:
                r.failure(f"replay answered order {_field(r, 'id')!r}, not the original {order_id!r}")
        return None


def _replayed(response: ResponseContextManager) -> bool:
    return str((response.headers or {}).get("Idempotent-Replayed", "")).lower() == "true"


def back_off(response: ResponseContextManager) -> None:
    """After a 429 or 503, wait as a well-behaved client would (Retry-After, bounded): a user without think time
    must not turn a shedding or breaker-open shop into a busy loop of failures that eats the generator's CPU."""
    if response.status_code not in (429, 503):
        return
    try:
        wait = float((response.headers or {}).get("Retry-After", "") or BACKOFF_S)
    except ValueError:
        wait = BACKOFF_S
    gevent.sleep(min(max(wait, 0.1), MAX_BACKOFF_S))


def _field(response: ResponseContextManager, name: str) -> Any:
    try:
        data = response.json()
    except ValueError:
        return None
    return data.get(name) if isinstance(data, dict) else None


class ShopperUser(OrderingMixin, ShopUser):
    """A customer: looks at the profile, updates it now and then, orders, retries an order, checks notifications."""

    weight = 20
    wait_time = between(0.5, 2.0)
    # Smoke runs set this: each shopper first takes every journey once, so a short run covers all of them
    # instead of leaving the rare ones (weight 1 of 12) to chance.
    tour_first = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recent = deque(maxlen=REPLAY_MEMORY)

    def on_start(self) -> None:
        super().on_start()
        if self.tour_first:
            for journey in (self.view_profile, self.update_profile, self.order, self.retry_order,
                            self.look_up_order, self.poll_notifications):
                journey()

    @task(4)
    def view_profile(self) -> None:
        if not self.ensure_token():
            return
        with self.client.get(shop.ME, headers=self.headers(), name=shop.ME, catch_response=True) as r:
            self.seen_unauthorized(r)
            if expect(r, 200) and _field(r, "email") != self.email:
                r.failure(f"profile of {_field(r, 'email')!r}, not of {self.email!r}")

    @task(1)
    def update_profile(self) -> None:
        if not self.ensure_token():
            return
        body = {"address": f"{random.randint(1, 200)} Load Street, {random.choice(['Lyon', 'Gent', 'Porto'])}"}
        with self.client.patch(shop.ME, json=body, headers=self.headers(), name=shop.ME,
                               catch_response=True) as r:
            self.seen_unauthorized(r)
            if expect(r, 200) and _field(r, "address") != body["address"]:
                r.failure("the profile did not keep the new address")

    @task(3)
    def order(self) -> None:
        if self.ensure_token():
            self.place_order()

    @task(1)
    def retry_order(self) -> None:
        if self.ensure_token():
            self.replay_order()

    @task(1)
    def look_up_order(self) -> None:
        if not self.ensure_token() or not self.recent:
            return
        _, _, order_id = random.choice(self.recent)
        with self.client.get(f"{shop.ORDERS}/{order_id}", headers=self.headers(), name=f"{shop.ORDERS}/{{id}}",
                             catch_response=True) as r:
            self.seen_unauthorized(r)
            expect(r, 200)

    @task(2)
    def poll_notifications(self) -> None:
        if not self.ensure_token():
            return
        with self.client.get(shop.NOTIFICATIONS, headers=self.headers(), name=shop.NOTIFICATIONS,
                             catch_response=True) as r:
            self.seen_unauthorized(r)
            if expect(r, 200) and not isinstance(_field(r, "items"), list):
                r.failure("notifications without an items list")


class RateShopper(ShopperUser):
    """The shopper's requests, one per iteration, paced so that all users together send a fixed rate.

    `iterations_per_s` is set per run by the locustfile (rate / users; see shapes.per_user_throughput).
    """

    iterations_per_s = 1.0

    def wait_time(self) -> float:  # type: ignore[override]
        return constant_throughput(self.iterations_per_s)(self)


class OrderUser(OrderingMixin, ShopUser):
    """Orders back to back, no think time: the path that saturates payments (each order is one gRPC Charge).

    Used by scale-test, where the closed loop of many such users keeps every payments slot busy.
    """

    weight = 20
    wait_time = constant(0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recent = deque(maxlen=1)

    @task
    def order(self) -> None:
        if self.ensure_token():
            self.place_order()


class AdminUser(ShopUser):
    """The back office: the bootstrap admin lists the users now and then. Low weight: one in 21 users."""

    weight = 1
    wait_time = between(2.0, 5.0)

    def on_start(self) -> None:
        account = admin_credentials()
        if account is None:
            log.error("BOOTSTRAP_ADMIN is not set: the admin journey cannot log in, this user stops")
            self.stop()
            return
        self.email, self.password = account
        self.registered = True  # auth creates the bootstrap admin on its first start
        self.log_in()

    @task
    def list_users(self) -> None:
        if not self.ensure_token():
            return
        with self.client.get(f"{shop.USERS}?limit=50", headers=self.headers(), name=shop.USERS,
                             catch_response=True) as r:
            self.seen_unauthorized(r)
            if expect(r, 200) and not isinstance(_field(r, "items"), list):
                r.failure("the user list without an items list")
