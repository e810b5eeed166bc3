"""users: profiles, keyed by the auth user id (the token's `sub`), in users' own database.

GET /users/me is get-or-create: a profile is created from the token's claims the first time its user asks for it.
orders calls it with the customer's forwarded token before charging, to check the customer (orders' README).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.contract import ADMIN, ADMIN_ONLY, ANY_USER
from services.kit.app import Service
from services.kit.db import DATABASE, Database
from services.kit.errors import ApiError
from services.kit.tokens import Principal, authenticated
from services.kit.validation import page, parse_body

from .models import ProfilePatch, metadata, profiles

# The kit verifies the token (401) and the role (403) before any handler runs.
routes = web.RouteTableDef()


def profile_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "email": row.email, "name": row.name, "address": row.address}


def _display_name(principal: Principal) -> str:
    # `name` is an optional claim auth puts in access tokens.
    name = principal.claims.get("name")
    return name[:200] if isinstance(name, str) else ""


async def _find(db: Database, user_id: str) -> Any:
    return await db.first(select(profiles).where(profiles.c.id == user_id))


async def get_or_create(db: Database, principal: Principal) -> Any:
    row = await _find(db, principal.user_id)
    if row is not None:
        return row
    now = datetime.now(UTC)
    try:
        async with db.session(write=True) as session:
            await session.execute(
                profiles.insert().values(
                    id=principal.user_id,
                    email=principal.email,
                    name=_display_name(principal),
                    address="",
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # a concurrent request (this or another replica) created it: read theirs back
    row = await _find(db, principal.user_id)
    if row is None:  # pragma: no cover - the insert either succeeded or lost to a committed row
        raise ApiError(503, "Service Unavailable", "the profile could not be created, retry")
    return row


@routes.get("/users/me")
@authenticated(roles=ANY_USER)
async def me(request: web.Request) -> web.Response:
    return web.json_response(profile_view(await get_or_create(request.app[DATABASE], request["principal"])))


@routes.patch("/users/me")
@authenticated(roles=ANY_USER)
async def patch_me(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    body = await parse_body(request, ProfilePatch)
    principal: Principal = request["principal"]
    await get_or_create(db, principal)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if changes:
        async with db.session(write=True) as session:
            await session.execute(
                update(profiles)
                .where(profiles.c.id == principal.user_id)
                .values(**changes, updated_at=datetime.now(UTC))
            )
    return web.json_response(profile_view(await _find(db, principal.user_id)))


@routes.get("/users")
@authenticated(roles=ADMIN_ONLY)
async def list_users(request: web.Request) -> web.Response:
    query = page(request).of(select(profiles).order_by(profiles.c.created_at, profiles.c.id))
    rows = await request.app[DATABASE].rows(query)
    return web.json_response({"items": [profile_view(r) for r in rows]})


@routes.get("/users/{user_id}")
@authenticated(roles=ANY_USER)
async def get_user(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    principal: Principal = request["principal"]
    user_id = request.match_info["user_id"]
    if user_id == principal.user_id:
        return web.json_response(profile_view(await get_or_create(db, principal)))
    if ADMIN not in principal.roles:
        raise ApiError(403, "Forbidden", "you may read only your own profile")
    row = await _find(db, user_id)
    if row is None:
        raise ApiError(404, "Not Found", "no such user")
    return web.json_response(profile_view(row))


def create_service() -> Service:
    svc = Service(contract.USERS)
    svc.metadata(metadata)
    svc.app.add_routes(routes)
    return svc


def main() -> None:
    create_service().run()
