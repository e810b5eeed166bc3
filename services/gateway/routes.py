"""The gateway's route table: which public paths go to which upstream, and who may call what."""

from __future__ import annotations

from dataclasses import dataclass

from services.contract import ADMIN_ONLY, ANY_USER, AUTH, NOTIFICATIONS, ORDERS, USERS, ServiceFacts


@dataclass(frozen=True)
class Route:
    prefix: str  # public path prefix, matched on whole segments: /api/users matches /api/users and /api/users/x
    upstream: ServiceFacts  # its name is the `upstream` label of the client metrics
    upstream_prefix: str  # what the prefix becomes upstream
    public: bool = False  # True: no token needed (auth's own endpoints)
    # True: a POST to the prefix itself honours Idempotency-Key (orders stores one order per key), so the gateway
    # may repeat it. Elsewhere a POST is never repeated, whatever headers a client sends: auth does not know keys,
    # and a client's Idempotency-Key on a login must not buy it a second attempt at every password.
    keyed_post: bool = False


ROUTES: tuple[Route, ...] = (
    Route("/api/auth", AUTH, "/auth", public=True),
    Route("/api/users", USERS, "/users"),
    Route("/api/orders", ORDERS, "/orders", keyed_post=True),
    Route("/api/catalogue", ORDERS, "/catalogue", public=True),  # what the shop sells: no token needed
    Route("/api/notifications", NOTIFICATIONS, "/notifications"),
)

# Roles per (method, path) for the protected routes; anything not listed needs ANY_USER. Paths are compared
# without a trailing slash. The services check roles themselves too; the gateway rejects before forwarding.
ROLE_RULES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/api/users"): ADMIN_ONLY,
}


def match_route(path: str) -> Route | None:
    for route in ROUTES:
        if path == route.prefix or path.startswith(route.prefix + "/"):
            return route
    return None


def required_roles(method: str, path: str) -> tuple[str, ...]:
    normalised = path.rstrip("/") or "/"
    method = "GET" if method == "HEAD" else method
    return ROLE_RULES.get((method, normalised), ANY_USER)
