"""Refresh tokens with rotation and reuse detection (OAuth 2.0 Security Best Current Practice, section 4.14).

A login starts a family; every refresh token is recorded by its jti with its family. A refresh uses its token up
(exactly once: a conditional update decides between two concurrent uses) and issues the next pair in the family.
A refresh token presented again after its use, or a token of a revoked family, revokes the whole family: whoever
holds any of its tokens, the thief or the victim, must log in again. Before this, a refresh token could be used as
often as anyone liked until it expired (a week).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from sqlalchemy import select, update

from services import contract
from services.kit.db import Database
from services.kit.tokens import unauthorized

from .models import refresh_tokens
from .signing import Tokens

log = structlog.get_logger(contract.AUTH.name)
REUSED = "this refresh token was used before: every session it belonged to is revoked; log in again"


class Sessions:
    def __init__(self, db: Database, tokens: Tokens) -> None:
        self.db = db
        self.tokens = tokens

    async def start(self, user: Any) -> dict[str, Any]:
        """A login: a new family, and its first pair."""
        return await self._issue(user, uuid.uuid4().hex)

    async def refresh(self, token: str, user_of: Any) -> dict[str, Any]:
        """Use `token` up and issue the next pair of its family; `user_of(user_id)` reads the user afresh (roles
        and email come from the database, not the old token). 401 for anything else."""
        claims = self.tokens.decode_refresh(token)
        jti, family = str(claims.get("jti", "")), str(claims.get("fam", ""))
        row = await self.db.first(select(refresh_tokens).where(refresh_tokens.c.jti == jti))
        if row is None or row.family != family or row.user_id != claims["sub"]:
            raise unauthorized("invalid refresh token")
        now = time.time()
        if row.revoked_at is not None or row.used_at is not None:
            await self._revoke(family, now, reason="reused" if row.revoked_at is None else "revoked family")
            raise unauthorized(REUSED)
        async with self.db.session(write=True) as session:
            used = await session.execute(update(refresh_tokens)
                                         .where(refresh_tokens.c.jti == jti, refresh_tokens.c.used_at.is_(None),
                                                refresh_tokens.c.revoked_at.is_(None))
                                         .values(used_at=now))
        if used.rowcount != 1:  # a concurrent refresh used it first: this is the second use
            await self._revoke(family, now, reason="used twice at once")
            raise unauthorized(REUSED)
        user = await user_of(claims["sub"])
        if user is None:
            raise unauthorized("invalid refresh token")
        return await self._issue(user, family)

    async def _issue(self, user: Any, family: str) -> dict[str, Any]:
        pair, refresh = self.tokens.pair(user, family=family)
        async with self.db.session(write=True) as session:
            await session.execute(refresh_tokens.insert().values(
                jti=refresh["jti"], family=family, user_id=user.id, issued_at=refresh["iat"],
                expires_at=refresh["exp"]))
        return pair

    async def _revoke(self, family: str, now: float, *, reason: str) -> None:
        async with self.db.session(write=True) as session:
            await session.execute(update(refresh_tokens)
                                  .where(refresh_tokens.c.family == family, refresh_tokens.c.revoked_at.is_(None))
                                  .values(revoked_at=now))
        log.warning("refresh token family revoked", family=family, reason=reason)
