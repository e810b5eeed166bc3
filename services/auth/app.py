"""auth: registers users, checks passwords, issues and refreshes RS256 JWTs, serves the JWKS.

The signing key and the tokens are in signing.py, password hashing in passwords.py, login throttling in
throttle.py, refresh-token families (rotation, reuse detection) in sessions.py; this module holds the handlers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.contract import ADMIN, CUSTOMER, JWKS_PATH
from services.kit.app import Service
from services.kit.config import env_str
from services.kit.db import DATABASE, Database
from services.kit.errors import ApiError
from services.kit.tokens import unauthorized
from services.kit.tracing import untraced
from services.kit.validation import parse_body

from .models import LoginBody, RefreshBody, RegisterBody, metadata, normalise_email, users, weak_password
from .passwords import Passwords
from .sessions import Sessions
from .signing import Tokens
from .throttle import LoginThrottle, client_of

INVALID_CREDENTIALS = "invalid email or password"

PASSWORDS = web.AppKey("passwords", Passwords)
TOKENS = web.AppKey("tokens", Tokens)
SESSIONS = web.AppKey("sessions", Sessions)
THROTTLE = web.AppKey("throttle", LoginThrottle)

log = structlog.get_logger(contract.AUTH.name)
routes = web.RouteTableDef()


async def _user_by_email(db: Database, email: str) -> Any:
    return await db.first(select(users).where(users.c.email == email))


async def _user_by_id(db: Database, user_id: str) -> Any:
    return await db.first(select(users).where(users.c.id == user_id))


@routes.post("/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    password_hash = await request.app[PASSWORDS].hash(body.password)
    user_id = str(uuid.uuid4())
    try:
        async with request.app[DATABASE].session(write=True) as session:
            await session.execute(
                insert(users).values(
                    id=user_id,
                    email=body.email,
                    name=body.name,
                    password_hash=password_hash,
                    roles=CUSTOMER,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError as exc:
        raise ApiError(409, "Conflict", "this email is already registered") from exc
    return web.json_response({"id": user_id, "email": body.email, "name": body.name, "roles": [CUSTOMER]}, status=201)


@routes.post("/auth/login")
async def login(request: web.Request) -> web.Response:
    db, passwords, throttle = request.app[DATABASE], request.app[PASSWORDS], request.app[THROTTLE]
    body = await parse_body(request, LoginBody)
    client = client_of(request)
    await throttle.check(body.email, client)  # before any hashing: a blocked guesser costs nothing
    user = await _user_by_email(db, body.email)
    if user is None:
        await passwords.verify(passwords.dummy_hash, body.password)
        await throttle.failed(body.email, client)
        raise unauthorized(INVALID_CREDENTIALS)
    if not await passwords.verify(user.password_hash, body.password):
        await throttle.failed(body.email, client)
        raise unauthorized(INVALID_CREDENTIALS)
    await throttle.succeeded(body.email)
    if passwords.needs_rehash(user.password_hash):
        new_hash = await passwords.hash(body.password)
        async with db.session(write=True) as session:
            await session.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
    return web.json_response(await request.app[SESSIONS].start(user))


@routes.post("/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshBody)
    db = request.app[DATABASE]
    # roles and email come from the database, not the old token: a role change takes effect on refresh
    pair = await request.app[SESSIONS].refresh(body.refresh_token, lambda user_id: _user_by_id(db, user_id))
    return web.json_response(pair)


@routes.get(JWKS_PATH)
@routes.get("/auth" + JWKS_PATH)
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(
        {"keys": [request.app[TOKENS].key.public_jwk]}, headers={"Cache-Control": "public, max-age=300"}
    )


async def bootstrap_admin(svc: Service) -> AsyncGenerator[None, None]:
    """BOOTSTRAP_ADMIN (email:password) is an admin with that password: created on the first start, its password
    set again when it differs (so a deployment's generated password replaces an older one), idempotent and
    race-safe. There is no default: without BOOTSTRAP_ADMIN the shop has no admin."""
    with untraced():  # setup, not a request
        await _ensure_admin(svc.app[DATABASE], svc.app[PASSWORDS], env_str("BOOTSTRAP_ADMIN", "").strip())
    yield


async def _ensure_admin(db: Database, passwords: Passwords, spec: str) -> None:
    if not spec:
        log.warning("BOOTSTRAP_ADMIN is not set: the shop has no admin account")
        return
    email, sep, password = spec.partition(":")
    email = normalise_email(email)
    if not sep or not email or not password:
        log.warning("BOOTSTRAP_ADMIN is not email:password; no admin created")
        return
    problem = weak_password(password, email)
    if problem:  # the admin sees every profile and order: its password meets the policy too
        log.error("BOOTSTRAP_ADMIN's password is refused; no admin account", reason=problem)
        return
    existing = await _user_by_email(db, email)
    if existing is not None:  # a restart (or the other replica) created it: make it the admin it is said to be
        if existing.roles != ADMIN or not await passwords.verify(existing.password_hash, password):
            password_hash = await passwords.hash(password)
            async with db.session(write=True) as session:
                await session.execute(update(users).where(users.c.id == existing.id)
                                      .values(password_hash=password_hash, roles=ADMIN))
            log.info("bootstrap admin's password and role set from BOOTSTRAP_ADMIN", email=email)
        return
    password_hash = await passwords.hash(password)
    try:
        async with db.session(write=True) as session:
            await session.execute(
                insert(users).values(
                    id=str(uuid.uuid4()),
                    email=email,
                    name="Administrator",
                    password_hash=password_hash,
                    roles=ADMIN,
                    created_at=datetime.now(UTC),
                )
            )
        log.info("bootstrap admin created", email=email)
    except IntegrityError:
        pass  # a concurrent replica created it first


def create_service() -> Service:
    svc = Service(contract.AUTH)
    svc.metadata(metadata)
    db = svc.app[DATABASE]
    tokens, passwords = Tokens.from_env(db), Passwords.from_env()
    svc.app[TOKENS], svc.app[PASSWORDS] = tokens, passwords
    svc.app[SESSIONS], svc.app[THROTTLE] = Sessions(db, tokens), LoginThrottle.from_env(db)
    svc.lifetime(tokens.lifetime)
    svc.lifetime(passwords.lifetime)
    svc.lifetime(bootstrap_admin)
    svc.app.add_routes(routes)
    return svc


def main() -> None:
    create_service().run()
