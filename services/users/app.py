"""users: profiles, keyed by the auth user id (the token's `sub`), in users' own database.

A profile is created from the token's claims the first time its user asks for it (GET /users/me). Orders calls
GET /users/me with the user's forwarded token to check that the user exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.kit.app import Service
from services.kit.errors import ApiError
from services.kit.tokens import Principal, authenticated
from services.kit.validation import parse_body, query_int

from .models import ProfilePatch, metadata, profiles

ANY_USER = ("customer", "admin")
MAX_PAGE = 500


def _profile(row: Any) -> dict[str, Any]:
    return {"id": row.id, "email": row.email, "name": row.name, "address": row.address}


def _display_name(principal: Principal) -> str:
    # The kit has verified this token already; `name` is an optional claim auth puts in access tokens.
    claims = jwt.decode(principal.token, options={"verify_signature": False})
    name = claims.get("name")
    return name[:200] if isinstance(name, str) else ""


class Users:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def _get(self, user_id: str) -> Any:
        async with self.svc.db.session() as session:
            return (await session.execute(select(profiles).where(profiles.c.id == user_id))).first()

    async def get_or_create(self, principal: Principal) -> Any:
        row = await self._get(principal.user_id)
        if row is not None:
            return row
        now = datetime.now(UTC)
        try:
            async with self.svc.db.session(write=True) as session:
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
        row = await self._get(principal.user_id)
        if row is None:  # pragma: no cover - the insert either succeeded or lost to a committed row
            raise ApiError(503, "Service Unavailable", "the profile could not be created, retry")
        return row

    # -- handlers -------------------------------------------------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        return web.json_response(_profile(await self.get_or_create(request["principal"])))

    async def patch_me(self, request: web.Request) -> web.Response:
        body = await parse_body(request, ProfilePatch)
        principal: Principal = request["principal"]
        await self.get_or_create(principal)
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if changes:
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    update(profiles)
                    .where(profiles.c.id == principal.user_id)
                    .values(**changes, updated_at=datetime.now(UTC))
                )
        return web.json_response(_profile(await self._get(principal.user_id)))

    async def list_users(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        offset = query_int(request, "offset", 0, 0, 10**9)
        async with self.svc.db.session() as session:
            rows = (
                await session.execute(
                    select(profiles).order_by(profiles.c.created_at, profiles.c.id).limit(limit).offset(offset)
                )
            ).all()
        return web.json_response({"items": [_profile(r) for r in rows]})

    async def get_user(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        user_id = request.match_info["user_id"]
        if user_id == principal.user_id:
            return web.json_response(_profile(await self.get_or_create(principal)))
        if "admin" not in principal.roles:
            raise ApiError(403, "Forbidden", "you may read only your own profile")
        row = await self._get(user_id)
        if row is None:
            raise ApiError(404, "Not Found", "no such user")
        return web.json_response(_profile(row))




def create_service() -> Service:
    svc = Service("users", 18002)
    svc.metadata(metadata)
    users = Users(svc)
    r = svc.app.router
    # the kit verifies the token (401) and the role (403) before any handler runs
    r.add_get("/users/me", authenticated(roles=ANY_USER)(users.me))
    r.add_patch("/users/me", authenticated(roles=ANY_USER)(users.patch_me))
    r.add_get("/users", authenticated(roles=("admin",))(users.list_users))
    r.add_get("/users/{user_id}", authenticated(roles=ANY_USER)(users.get_user))
    return svc


def main() -> None:
    create_service().run()
