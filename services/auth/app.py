"""auth: registers users, checks passwords, issues and refreshes RS256 JWTs, serves the JWKS.

One RSA signing key per deployment, kept in auth's own database (table signing_keys) so that every replica and every
restart signs with the same key. On a fresh database two replicas may start at the same moment: each generates a key
and inserts it into the unique slot "current"; exactly one insert wins and both read the winner back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from services.kit.app import Service
from services.kit.config import env_int, env_str
from services.kit.errors import ApiError
from services.kit.tracing import untraced
from services.kit.validation import parse_body

from .models import LoginBody, RefreshBody, RegisterBody, metadata, normalise_email, signing_keys, users

ISSUER = "chaoslab-auth"
AUDIENCE = "chaoslab"
ALGORITHM = "RS256"
KEY_SLOT = "current"
INVALID_CREDENTIALS = "invalid email or password"


class Settings:
    def __init__(self) -> None:
        self.access_ttl_s = env_int("ACCESS_TOKEN_TTL_S", 900)
        self.refresh_ttl_s = env_int("REFRESH_TOKEN_TTL_S", 604800)
        self.bootstrap_admin = env_str("BOOTSTRAP_ADMIN", "admin@chaoslab.local:chaoslab-admin")
        # argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1) rather than argon2-cffi's 64 MiB default:
        # the whole lab must fit in well under 1 GB, and HASH_WORKERS bounds how many hashes run at once.
        self.argon2_time_cost = env_int("ARGON2_TIME_COST", 2)
        self.argon2_memory_kib = env_int("ARGON2_MEMORY_KIB", 19456)
        self.argon2_parallelism = env_int("ARGON2_PARALLELISM", 1)
        self.hash_workers = env_int("HASH_WORKERS", 2)


def _b64url_uint(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a kid that is a pure function of the public key."""
    canonical = json.dumps({k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return _b64url_uint(hashlib.sha256(canonical.encode()).digest())


class SigningKey:
    def __init__(self, kid: str, private_pem: str) -> None:
        self.kid = kid
        self.private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        self.public_key = self.private_key.public_key()
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        self.public_jwk = {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": kid, "alg": ALGORITHM, "use": "sig"}


def _generate_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = _thumbprint(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return kid, pem


class Auth:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.settings = Settings()
        self.hasher = PasswordHasher(
            time_cost=self.settings.argon2_time_cost,
            memory_cost=self.settings.argon2_memory_kib,
            parallelism=self.settings.argon2_parallelism,
        )
        self.executor = ThreadPoolExecutor(max_workers=max(1, self.settings.hash_workers), thread_name_prefix="argon2")
        self.key: SigningKey | None = None
        self.dummy_hash = ""

    # -- passwords, off the event loop ------------------------------------------------------------------------
    async def _in_executor(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def hash_password(self, password: str) -> str:
        return await self._in_executor(self.hasher.hash, password)

    async def verify_password(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._in_executor(check)

    # -- startup ------------------------------------------------------------------------------------------------
    async def startup(self, svc: Service) -> None:
        with untraced():  # setup, not a request: its statements make no traces of their own
            self.key = await self.load_or_create_key()
            svc.log.info("signing key ready", kid=self.key.kid)
            # Login hashes a password even for an unknown email, so timing does not tell whether an email exists.
            self.dummy_hash = await self.hash_password(uuid.uuid4().hex)
            await self.bootstrap_admin()

    async def shutdown(self, svc: Service) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _current_key_row(self):
        async with self.svc.db.session() as session:
            row = (
                await session.execute(
                    select(signing_keys.c.kid, signing_keys.c.private_pem).where(signing_keys.c.slot == KEY_SLOT)
                )
            ).first()
        return row

    async def load_or_create_key(self) -> SigningKey:
        row = await self._current_key_row()
        if row is None:
            kid, pem = await self._in_executor(_generate_key)
            try:
                async with self.svc.db.session(write=True) as session:
                    await session.execute(
                        insert(signing_keys).values(
                            kid=kid, slot=KEY_SLOT, private_pem=pem, created_at=datetime.now(UTC)
                        )
                    )
                self.svc.log.info("generated a new signing key", kid=kid)
            except IntegrityError:
                self.svc.log.info("another replica stored the signing key first; using theirs")
            row = await self._current_key_row()
        if row is None:  # pragma: no cover - the insert above either won or lost to a committed row
            raise RuntimeError("no signing key after insert")
        return SigningKey(row.kid, row.private_pem)

    async def bootstrap_admin(self) -> None:
        spec = self.settings.bootstrap_admin.strip()
        if not spec:
            return
        email, sep, password = spec.partition(":")
        email = normalise_email(email)
        if not sep or not email or not password:
            self.svc.log.warning("BOOTSTRAP_ADMIN is not email:password; no admin created")
            return
        if await self._user_by_email(email) is not None:
            return  # idempotent: a restart (or the other replica) already created it
        password_hash = await self.hash_password(password)
        try:
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    insert(users).values(
                        id=str(uuid.uuid4()),
                        email=email,
                        name="Administrator",
                        password_hash=password_hash,
                        roles="admin",
                        created_at=datetime.now(UTC),
                    )
                )
            self.svc.log.info("bootstrap admin created", email=email)
        except IntegrityError:
            pass  # a concurrent replica created it first

    # -- data -----------------------------------------------------------------------------------------------------
    async def _user_by_email(self, email: str):
        async with self.svc.db.session() as session:
            return (await session.execute(select(users).where(users.c.email == email))).first()

    async def _user_by_id(self, user_id: str):
        async with self.svc.db.session() as session:
            return (await session.execute(select(users).where(users.c.id == user_id))).first()

    # -- tokens ---------------------------------------------------------------------------------------------------
    def _token(self, user, typ: str, ttl_s: int) -> str:
        assert self.key is not None
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user.id,
            "email": user.email,
            "roles": _roles(user.roles),
            "iat": now,
            "exp": now + ttl_s,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "typ": typ,
            "jti": uuid.uuid4().hex,
        }
        if typ == "access":
            claims["name"] = user.name
        return jwt.encode(claims, self.key.private_key, algorithm=ALGORITHM, headers={"kid": self.key.kid})

    def token_pair(self, user) -> dict[str, Any]:
        return {
            "access_token": self._token(user, "access", self.settings.access_ttl_s),
            "refresh_token": self._token(user, "refresh", self.settings.refresh_ttl_s),
            "token_type": "Bearer",
            "expires_in": self.settings.access_ttl_s,
        }

    def decode_refresh(self, token: str) -> dict[str, Any]:
        assert self.key is not None
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.key.kid:
                raise jwt.InvalidTokenError("unknown kid")
            claims = jwt.decode(
                token,
                self.key.public_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid refresh token") from exc
        if claims.get("typ") != "refresh":
            raise _unauthorized("not a refresh token")
        return claims

    # -- handlers -------------------------------------------------------------------------------------------------
    async def register(self, request: web.Request) -> web.Response:
        body = await parse_body(request, RegisterBody)
        password_hash = await self.hash_password(body.password)
        user_id = str(uuid.uuid4())
        try:
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    insert(users).values(
                        id=user_id,
                        email=body.email,
                        name=body.name,
                        password_hash=password_hash,
                        roles="customer",
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError as exc:
            raise ApiError(409, "Conflict", "this email is already registered") from exc
        return web.json_response(
            {"id": user_id, "email": body.email, "name": body.name, "roles": ["customer"]}, status=201
        )

    async def login(self, request: web.Request) -> web.Response:
        body = await parse_body(request, LoginBody)
        user = await self._user_by_email(body.email)
        if user is None:
            await self.verify_password(self.dummy_hash, body.password)
            raise _unauthorized(INVALID_CREDENTIALS)
        if not await self.verify_password(user.password_hash, body.password):
            raise _unauthorized(INVALID_CREDENTIALS)
        if self.hasher.check_needs_rehash(user.password_hash):
            new_hash = await self.hash_password(body.password)
            async with self.svc.db.session(write=True) as session:
                await session.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
        return web.json_response(self.token_pair(user))

    async def refresh(self, request: web.Request) -> web.Response:
        body = await parse_body(request, RefreshBody)
        claims = self.decode_refresh(body.refresh_token)
        user = await self._user_by_id(claims["sub"])
        if user is None:
            raise _unauthorized("invalid refresh token")
        # roles and email come from the database, not the old token: a role change takes effect on refresh
        return web.json_response(self.token_pair(user))

    async def jwks(self, request: web.Request) -> web.Response:
        assert self.key is not None
        return web.json_response(
            {"keys": [self.key.public_jwk]}, headers={"Cache-Control": "public, max-age=300"}
        )


def _roles(value: str) -> list[str]:
    return [r for r in value.split(",") if r]


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="chaoslab"'})


def create_service() -> Service:
    svc = Service("auth", 18001)
    svc.metadata(metadata)
    auth = Auth(svc)
    svc.on_startup(auth.startup)
    svc.on_shutdown(auth.shutdown)
    r = svc.app.router
    r.add_post("/auth/register", auth.register)
    r.add_post("/auth/login", auth.login)
    r.add_post("/auth/refresh", auth.refresh)
    r.add_get("/.well-known/jwks.json", auth.jwks)
    r.add_get("/auth/.well-known/jwks.json", auth.jwks)
    return svc


def main() -> None:
    create_service().run()
