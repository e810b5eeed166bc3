"""Login throttling: too many failed logins for one account, or from one client, and further attempts are refused
with 429 and Retry-After before any password is checked, for a while.

Per account, so that nobody can try passwords against one account faster than LOGIN_MAX_FAILURES per
LOGIN_WINDOW_S (before: 60 guesses in 1.1 s); per client, so that one client cannot try one password against many
accounts. The counts live in auth's database, which every replica shares. The client is the address the gateway
appended to X-Forwarded-For (the last entry; earlier ones are the client's own claims), else the connection's peer.

The price of a per-account limit: anyone can lock an account out of logging in for LOGIN_BLOCK_S by failing on
purpose. The block is short and the holder of a token keeps using it; a lab that wants no such lever can raise
LOGIN_MAX_FAILURES (docs/design.md, "Security").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.kit.config import env_float, env_int
from services.kit.db import Database
from services.kit.errors import ApiError

from .models import login_failures

THROTTLED = "https://chaoslab.dev/problems/login-throttled"


def client_of(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.remote or "unknown"


@dataclass(frozen=True)
class Limit:
    max_failures: int
    window_s: float
    block_s: float


class LoginThrottle:
    def __init__(self, db: Database, *, account: Limit, client: Limit) -> None:
        self.db = db
        self.limits = {"account": account, "client": client}

    @classmethod
    def from_env(cls, db: Database) -> LoginThrottle:
        window, block = env_float("LOGIN_WINDOW_S", 300.0), env_float("LOGIN_BLOCK_S", 60.0)
        return cls(db, account=Limit(env_int("LOGIN_MAX_FAILURES", 5), window, block),
                   client=Limit(env_int("LOGIN_CLIENT_MAX_FAILURES", 20), window, block))

    @staticmethod
    def _keys(email: str, client: str) -> dict[str, str]:
        return {"account": f"account:{email}", "client": f"client:{client}"}

    async def check(self, email: str, client: str) -> None:
        """Raise 429 (with Retry-After) while the account or the client is blocked."""
        keys = self._keys(email, client)
        rows = await self.db.rows(select(login_failures.c.key, login_failures.c.blocked_until)
                                  .where(login_failures.c.key.in_(list(keys.values()))))
        now = time.time()
        wait = max((row.blocked_until - now for row in rows), default=0.0)
        if wait > 0:
            raise ApiError(429, "Too Many Requests", "too many failed logins for this account or from this client; "
                           "retry later", headers={"Retry-After": str(max(1, math.ceil(wait)))}, type=THROTTLED)

    async def failed(self, email: str, client: str) -> None:
        now = time.time()
        for kind, key in self._keys(email, client).items():
            await self._count(key, self.limits[kind], now)

    async def succeeded(self, email: str) -> None:
        async with self.db.session(write=True) as session:
            await session.execute(login_failures.delete().where(login_failures.c.key == f"account:{email}"))

    async def _count(self, key: str, limit: Limit, now: float) -> None:
        async with self.db.session(write=True) as session:
            row = (await session.execute(select(login_failures).where(login_failures.c.key == key))).first()
            if row is None or now - row.window_started > limit.window_s:
                failures, started = 1, now
            else:
                failures, started = row.failures + 1, row.window_started
            blocked_until = now + limit.block_s if failures >= limit.max_failures else 0.0
            if blocked_until:
                failures, started = 0, now  # the block is the penalty; the next window starts after it
            values = {"failures": failures, "window_started": started, "blocked_until": blocked_until}
            if row is None:
                try:
                    async with session.begin_nested():
                        await session.execute(login_failures.insert().values(key=key, **values))
                    return
                except IntegrityError:
                    pass  # another replica counted the first failure at the same moment: count on top of it
            await session.execute(update(login_failures).where(login_failures.c.key == key).values(**values))
