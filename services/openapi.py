"""The public API's contract: an OpenAPI 3.1 document of the gateway, built from the pydantic models the services
validate requests with (and the models of their answers), written to services/gateway/openapi.json, which the
gateway serves at /api/openapi.json.

    python -m services.openapi           # rewrite services/gateway/openapi.json
    python -m services.openapi --check   # exit 1 when it is stale (make generate writes it; a test checks it)

Every operation lists every status it can answer and what each means; every error is a problem document
(application/problem+json, kit.errors.Problem) whose `type` is about:blank or one of PROBLEM_TYPES. A build-time
tool: no service imports it (the gateway reads the JSON file).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services import contract
from services.auth import models as auth
from services.kit.errors import PROBLEM_TYPE, Problem
from services.notifications import models as notifications
from services.orders import models as orders
from services.users import models as users

DOCUMENT = Path(__file__).resolve().parent / "gateway" / "openapi.json"
REF = "#/components/schemas/{model}"

PROBLEM_TYPES = {
    "about:blank": "the status says it all: see the title and the detail",
    "https://chaoslab.dev/problems/rate-limited": "429: this client's requests exceed the gateway's rate limit; "
                                                  "retry after Retry-After seconds",
    "https://chaoslab.dev/problems/login-throttled": "429: too many failed logins for this account or from this "
                                                     "client; retry after Retry-After seconds",
    "https://chaoslab.dev/problems/idempotency-key-reused": "409: this Idempotency-Key was used for another order",
    "https://chaoslab.dev/problems/token-expired": "401: the access token expired (beyond the verifier's "
                                                   "JWT_LEEWAY_S); refresh it",
    "https://chaoslab.dev/problems/token-not-yet-valid": "401: the token was issued in the future by the verifier's "
                                                         "clock (beyond JWT_LEEWAY_S): a clock is skewed",
    "https://chaoslab.dev/problems/storage-full": "503: a service's database has no space left; nothing was "
                                                  "written; retry after Retry-After seconds",
    "https://chaoslab.dev/problems/caller-not-allowed": "403: inside the shop, the calling service's identity (its "
                                                        "certificate) may not call this service (the call graph); "
                                                        "the gateway passes it on when it is the caller refused",
}

# What every answer of the gateway may be besides the operation's own: its limits and its upstreams.
GATEWAY_ANSWERS = {
    429: "the client's rate limit at the gateway, or login throttling (problem type says which; Retry-After)",
    502: "an upstream answered with an error the shop cannot pass on (e.g. users or payments failed)",
    503: "an upstream is unavailable or its circuit breaker is open (Retry-After)",
    504: "an upstream did not answer in time",
}
BODY_ANSWERS = {
    400: "the body is not JSON, nests too deeply, or fails validation (`errors` names each field)",
    413: "the body exceeds the gateway's MAX_BODY_BYTES",
}
TOKEN_ANSWERS = {401: "no bearer token, or one that is invalid, expired or not an access token",
                 403: "the token's roles do not allow this"}
PAGE = [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                     "default": 100}},
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0,
                                                                      "maximum": 10**9, "default": 0}},
]


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: dict[int, tuple[type[BaseModel] | None, str]]  # status -> (answer model, meaning)
    body: type[BaseModel] | None = None
    token: bool = True
    parameters: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # the operation's own error answers
    ok_headers: dict[int, dict[str, Any]] = field(default_factory=dict)
    links: dict[int, dict[str, Any]] = field(default_factory=dict)


IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": True,
                   "description": "one order per key and user: a retry with the same key and body answers the "
                                  "same order (200, Idempotent-Replayed: true)",
                   "schema": {"type": "string", "minLength": 1, "maxLength": orders.IDEMPOTENCY_KEY_MAX,
                              "pattern": orders.IDEMPOTENCY_KEY_PATTERN}}
ORDER_ID = {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def operations() -> list[Operation]:
    return [
        Operation("post", "/api/auth/register", "register", "Create a customer account", "auth",
                  {201: (auth.Registered, "the account (role customer)")}, auth.RegisterBody, token=False,
                  errors={409: "this email is already registered"},
                  links={201: {"LogIn": {"operationId": "login", "description": "log the new account in",
                                         "requestBody": {"email": "$request.body#/email",
                                                         "password": "$request.body#/password"}}}}),
        Operation("post", "/api/auth/login", "login", "Log in: an access token and a refresh token", "auth",
                  {200: (auth.TokenPair, "the tokens")}, auth.LoginBody, token=False,
                  errors={401: "invalid email or password (the same answer for an unknown email)"},
                  links={200: {"Refresh": {"operationId": "refresh", "description": "use the refresh token once",
                                           "requestBody": {"refresh_token": "$response.body#/refresh_token"}}}}),
        Operation("post", "/api/auth/refresh", "refresh", "Use a refresh token up: the next pair of its family",
                  "auth", {200: (auth.TokenPair, "the next tokens (the old refresh token is used up)")},
                  auth.RefreshBody, token=False,
                  errors={401: "not a valid refresh token, or one used before (its whole family is revoked)"}),
        Operation("get", "/api/auth" + contract.JWKS_PATH, "jwks", "The public keys tokens are signed with", "auth",
                  {200: (auth.Jwks, "a JSON Web Key Set (RS256)")}, token=False),
        Operation("get", "/api/users/me", "getMe", "The caller's profile (created on first access)", "users",
                  {200: (users.Profile, "the profile")}),
        Operation("patch", "/api/users/me", "patchMe", "Change the caller's name or address", "users",
                  {200: (users.Profile, "the changed profile")}, users.ProfilePatch),
        Operation("get", "/api/users", "listUsers", "Every profile (admin)", "users",
                  {200: (users.ProfilePage, "a page of profiles")}, parameters=PAGE),
        Operation("get", "/api/users/{user_id}", "getUser", "A profile: one's own, or anyone's for an admin", "users",
                  {200: (users.Profile, "the profile")}, parameters=[USER_ID], errors={404: "no such user"}),
        Operation("get", "/api/catalogue", "getCatalogue", "What the shop sells, at what price", "orders",
                  {200: (orders.Catalogue, "the products and the currencies the shop charges in")}, token=False),
        Operation("post", "/api/orders", "placeOrder", "Place an order: charged, stored, notified", "orders",
                  {201: (orders.Order, "the new order"),
                   200: (orders.Order, "the order this Idempotency-Key placed before (Idempotent-Replayed: true)")},
                  orders.OrderIn, parameters=[IDEMPOTENCY_KEY],
                  errors={403: "users does not know this customer",
                          409: "this Idempotency-Key was used for a different order"},
                  ok_headers={201: {"Location": {"schema": {"type": "string"}}},
                              200: {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}},
                  links={201: {"GetOrder": {"operationId": "getOrder", "description": "read the order back",
                                            "parameters": {"order_id": "$response.body#/id"}}}}),
        Operation("get", "/api/orders", "listOrders", "The caller's orders, newest first (every order: admin)",
                  "orders", {200: (orders.OrderPage, "a page of orders")},
                  parameters=[*PAGE, {"name": "all", "in": "query", "required": False,
                                      "schema": {"type": "string", "enum": ["true", "false"]}}]),
        Operation("get", "/api/orders/{order_id}", "getOrder", "One order of the caller (any order: admin)",
                  "orders", {200: (orders.Order, "the order")}, parameters=[ORDER_ID],
                  errors={404: "no such order, or another user's (the same answer)"}),
        Operation("get", "/api/notifications", "listNotifications", "The caller's notifications, newest first",
                  "notifications", {200: (notifications.NotificationPage, "a page of notifications")},
                  parameters=PAGE),
    ]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}}}


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (model, meaning) in sorted(op.ok.items()):
        answer: dict[str, Any] = {"description": meaning}
        if model is not None:
            answer["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}
        if status in op.ok_headers:
            answer["headers"] = op.ok_headers[status]
        if status in op.links:
            answer["links"] = op.links[status]
        out[str(status)] = answer
    errors: dict[int, str] = {}
    if op.body is not None or op.parameters:
        errors[400] = BODY_ANSWERS[400] if op.body is not None else "a parameter is out of its bounds"
    if op.body is not None:
        errors[413] = BODY_ANSWERS[413]
    if op.token:
        errors.update(TOKEN_ANSWERS)
    errors.update(GATEWAY_ANSWERS)
    errors.update(op.errors)
    for status, meaning in sorted(errors.items()):
        out[str(status)] = _problem(meaning)
    return out


def build() -> dict[str, Any]:
    ops = operations()
    models = {Problem} | {m for op in ops for m, _ in op.ok.values() if m is not None}
    bodies = {op.body for op in ops if op.body is not None}
    _, schemas = models_json_schema([(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)]
                                    + [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)],
                                    ref_template=REF)
    paths: dict[str, Any] = {}
    for op in ops:
        operation: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
                                     "responses": _responses(op)}
        if op.parameters:
            operation["parameters"] = op.parameters
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}}}
        operation["security"] = [{"bearer": []}] if op.token else []
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chaoslab shop",
            "version": "1",
            "description": "The shop's public API, through the gateway. Every error is an "
                           "application/problem+json document (RFC 9457); its `type` is one of: "
                           + "; ".join(f"{t}: {m}" for t, m in PROBLEM_TYPES.items()) + ".",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": "an access token from /api/auth/login (RS256)"}},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.openapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed document is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOCUMENT.read_text() if DOCUMENT.exists() else ""
        if current != text:
            print(f"{DOCUMENT} is stale: run python -m services.openapi (make generate)", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
