"""auth's signing key and the tokens it signs.

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
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services import contract
from services.contract import JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER
from services.kit.config import env_int
from services.kit.db import Database
from services.kit.tokens import unauthorized
from services.kit.tracing import untraced

from .models import signing_keys

KEY_SLOT = "current"

log = structlog.get_logger(contract.AUTH.name)


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
        self.public_jwk = {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": kid, "alg": JWT_ALGORITHM, "use": "sig"}


def _generate_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = _thumbprint(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return kid, pem


async def _current_key_row(db: Database) -> Any:
    return await db.first(select(signing_keys.c.kid, signing_keys.c.private_pem).where(signing_keys.c.slot == KEY_SLOT))


async def load_or_create_key(db: Database) -> SigningKey:
    row = await _current_key_row(db)
    if row is None:
        kid, pem = await asyncio.get_running_loop().run_in_executor(None, _generate_key)
        try:
            async with db.session(write=True) as session:
                await session.execute(
                    insert(signing_keys).values(kid=kid, slot=KEY_SLOT, private_pem=pem, created_at=datetime.now(UTC))
                )
            log.info("generated a new signing key", kid=kid)
        except IntegrityError:
            log.info("another replica stored the signing key first; using theirs")
        row = await _current_key_row(db)
    if row is None:  # pragma: no cover - the insert above either won or lost to a committed row
        raise RuntimeError("no signing key after insert")
    return SigningKey(row.kid, row.private_pem)


def roles_of(value: str) -> list[str]:
    """The roles column ("customer" or "admin", comma-separated) as a list."""
    return [r for r in value.split(",") if r]


class Tokens:
    """Issues access and refresh tokens with the signing key, which its lifetime loads (or creates) at start."""

    def __init__(self, db: Database, *, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self.db = db
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self._key: SigningKey | None = None

    @classmethod
    def from_env(cls, db: Database) -> Tokens:
        return cls(db, access_ttl_s=env_int("ACCESS_TOKEN_TTL_S", 900),
                   refresh_ttl_s=env_int("REFRESH_TOKEN_TTL_S", 604800))

    async def lifetime(self, _: object = None) -> AsyncGenerator[None, None]:
        with untraced():  # setup, not a request: its statements make no traces of their own
            self._key = await load_or_create_key(self.db)
        log.info("signing key ready", kid=self._key.kid)
        yield

    @property
    def key(self) -> SigningKey:
        if self._key is None:
            raise RuntimeError("the signing key is loaded when the replica starts")
        return self._key

    def _token(self, user: Any, typ: str, ttl_s: int, **extra: Any) -> tuple[str, dict[str, Any]]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user.id,
            "email": user.email,
            "roles": roles_of(user.roles),
            "iat": now,
            "exp": now + ttl_s,
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "typ": typ,
            "jti": uuid.uuid4().hex,
        }
        if typ == "access":
            claims["name"] = user.name
        claims.update(extra)
        token = jwt.encode(claims, self.key.private_key, algorithm=JWT_ALGORITHM, headers={"kid": self.key.kid})
        return token, claims

    def pair(self, user: Any, *, family: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """An access token and a refresh token of `family` (sessions.py records it): the answer, and the refresh
        token's claims."""
        access, _ = self._token(user, "access", self.access_ttl_s)
        refresh, claims = self._token(user, "refresh", self.refresh_ttl_s, fam=family)
        answer = {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                  "expires_in": self.access_ttl_s}
        return answer, claims

    def decode_refresh(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.key.kid:
                raise jwt.InvalidTokenError("unknown kid")
            claims = jwt.decode(
                token,
                self.key.public_key,
                algorithms=[JWT_ALGORITHM],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "typ", "jti"]},
            )
        except jwt.InvalidTokenError as exc:
            raise unauthorized("invalid refresh token") from exc
        if claims.get("typ") != "refresh":
            raise unauthorized("not a refresh token")
        return claims
