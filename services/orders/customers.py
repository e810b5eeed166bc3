"""orders' view of users and of its own failures: the customer check before anything is charged (users' REST API
through the kit's Upstream), and how an order that cannot be placed is counted, logged and answered."""

from __future__ import annotations

from typing import Any

import structlog

from services import contract
from services.kit import metrics
from services.kit.errors import ApiError
from services.kit.http_client import Upstream, UpstreamError
from services.kit.tokens import Principal

log = structlog.get_logger(contract.ORDERS.name)


def order_failed(reason: str, status: int, title: str, detail: str, **extra: Any) -> ApiError:
    """An order that cannot be placed: counted by reason, logged, answered as a problem."""
    metrics.orders_failed_total.labels(reason).inc()
    log.warning("order failed", reason=reason, status=status, detail=detail)
    return ApiError(status, title, detail, **extra)


async def check_customer(users: Upstream, principal: Principal) -> None:
    """Ask users for the caller's profile with the caller's own token: users' GET /users/me is get-or-create, so
    this checks that users accepts the customer (and gives them a profile) before anything is charged. The answer
    must be the caller's profile; anything else is users failing."""
    try:
        status, profile = await users.request(
            "GET", "/users/me", headers={"Authorization": f"Bearer {principal.token}"}, idempotent=True
        )
    except UpstreamError as exc:
        reason = "users_circuit_open" if exc.reason == "circuit_open" else "users_unavailable"
        metrics.orders_failed_total.labels(reason).inc()
        raise
    if status in (401, 403, 404):
        raise order_failed("user_rejected", 403, "Forbidden", f"users does not know this user ({status})")
    if status != 200:
        raise order_failed("users_error", 502, "Bad Gateway", f"users answered {status}")
    if not isinstance(profile, dict) or profile.get("id") != principal.user_id:
        raise order_failed("users_error", 502, "Bad Gateway", "users answered with a profile that is not the caller's")
