"""JWT verification with keys from auth's JWKS, cached so that a short auth outage logs nobody out."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from services.contract import ANY_USER, AUTH, JWKS_PATH, JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER
from services.kit.config import env_float
from services.kit.errors import ApiError
from services.kit.inprocess import Dispatch

# With no key at all (auth unreachable since this replica started), try again this often, not every request.
NO_KEYS_REFETCH_S = 0.5


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    roles: list[str] = field(default_factory=list)
    token: str = ""
    claims: dict[str, Any] = field(default_factory=dict)

    def has_any(self, roles: tuple[str, ...]) -> bool:
        return any(role in self.roles for role in roles)


def unauthorized(detail: str, **extra: Any) -> ApiError:
    """401 with the challenge a bearer-token API answers (RFC 6750)."""
    return ApiError(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="chaoslab"'}, **extra)


# Clocks disagree a little between the issuer and a verifier: a token is accepted up to this many seconds past its
# exp and before its iat (RFC 7519 allows "a small leeway, usually no more than a few minutes"). Beyond it, 401
# with a problem that names this service's clock, so that a wrong clock is seen as one (the clock fault found that
# without a leeway one second of skew between auth and a verifier rejected every fresh token).
DEFAULT_LEEWAY_S = 60.0
TOKEN_EXPIRED = "https://chaoslab.dev/problems/token-expired"
TOKEN_NOT_YET_VALID = "https://chaoslab.dev/problems/token-not-yet-valid"


def _clock_problem(claims: dict[str, Any], leeway_s: float) -> ApiError:
    now = time.time()
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and now > exp + leeway_s:
        return unauthorized(
            f"the token expired {now - exp:.0f} s ago by this service's clock (leeway {leeway_s:g} s); if it was "
            "issued moments ago, this service's clock or the issuer's is wrong", type=TOKEN_EXPIRED,
            expired_at=int(exp), verifier_time=int(now))
    if isinstance(iat, int | float) and iat > now + leeway_s:
        return unauthorized(
            f"the token was issued {iat - now:.0f} s in the future by this service's clock (leeway {leeway_s:g} s): "
            "this service's clock and the issuer's disagree", type=TOKEN_NOT_YET_VALID, issued_at=int(iat),
            verifier_time=int(now))
    return unauthorized("the token is not valid at this time")


class JwksVerifier:
    """Verifies RS256 access tokens. Keys are refreshed every `refresh_s` and when an unknown kid shows up
    (at most every `min_refetch_s`); a failed refresh keeps the keys it had."""

    def __init__(self, auth_url: str, session: Callable[[], aiohttp.ClientSession], *,
                 refresh_s: float = 300.0, min_refetch_s: float = 5.0, timeout_s: float = 2.0,
                 leeway_s: float | None = None) -> None:
        self.leeway_s = env_float("JWT_LEEWAY_S", DEFAULT_LEEWAY_S) if leeway_s is None else leeway_s
        self._url = f"{auth_url}{JWKS_PATH}"
        self._session = session
        self._dispatch: Dispatch | None = None
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._refresh_s = refresh_s
        self._min_refetch_s = min_refetch_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._lock = asyncio.Lock()

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    def fetch_in_process(self, dispatch: Dispatch) -> None:
        """Fetch the JWKS from auth's module in this process (the modular monolith) instead of over HTTP."""
        self._dispatch = dispatch

    async def _fetch(self) -> Any:
        """auth's JWKS document, None when auth did not answer 200."""
        if self._dispatch is not None:
            async with asyncio.timeout(self._timeout.total):
                status, _, body = await self._dispatch("GET", JWKS_PATH, None, None, None)
            return json.loads(body) if status == 200 else None
        # over mutual TLS, auth's certificate must be the one made for auth (services.kit.tls)
        async with self._session().get(self._url, timeout=self._timeout, server_hostname=AUTH.name) as resp:
            return await resp.json() if resp.status == 200 else None

    async def refresh(self) -> bool:
        """Fetch the JWKS now; True when it succeeded."""
        async with self._lock:
            self._attempted_at = time.monotonic()
            try:
                jwks = await self._fetch()
                if not isinstance(jwks, dict):
                    return False
                keys = {k["kid"]: jwt.PyJWK(k, JWT_ALGORITHM).key for k in jwks.get("keys", []) if "kid" in k}
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, jwt.PyJWKError):
                return False
            if keys:
                self._keys = keys
                self._fetched_at = time.monotonic()
            return bool(keys)

    async def _key_for(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > self._refresh_s
        unknown = kid not in self._keys
        if stale or unknown:
            if self._lock.locked():
                # Another request is fetching right now (a fresh replica's first burst): wait for its answer
                # instead of failing with "no keys yet".
                async with self._lock:
                    pass
            elif now - self._attempted_at >= (self._min_refetch_s if self._keys else NO_KEYS_REFETCH_S):
                await self.refresh()
        if kid in self._keys:
            return self._keys[kid]
        if not self._keys:
            raise ApiError(503, "Service Unavailable", "token keys are not available yet (auth unreachable)",
                           headers={"Retry-After": "1"})
        raise unauthorized("the token was signed with an unknown key")

    async def verify(self, token: str, *, typ: str = "access") -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("the token is malformed") from None
        if header.get("alg") != JWT_ALGORITHM:
            raise unauthorized(f"the token must be signed with {JWT_ALGORITHM}")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM], audience=JWT_AUDIENCE, issuer=JWT_ISSUER,
                                options={"require": ["exp", "iat", "sub"]}, leeway=self.leeway_s)
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            # signed by auth and otherwise valid: only the times are off by more than the leeway
            unverified = jwt.decode(token, options={"verify_signature": False})
            raise _clock_problem(unverified, self.leeway_s) from None
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the token is invalid: {exc}") from None
        if claims.get("typ") != typ:
            raise unauthorized(f"a {typ} token is required")
        return claims

    async def principal(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("a bearer token is required")
        claims = await self.verify(token.strip())
        roles = claims.get("roles") or []
        return Principal(user_id=str(claims["sub"]), email=str(claims.get("email", "")),
                         roles=[str(r) for r in roles] if isinstance(roles, list) else [], token=token.strip(),
                         claims=claims)


VERIFIER = web.AppKey("verifier", JwksVerifier)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authenticated(roles: tuple[str, ...] = ANY_USER) -> Callable[[Handler], Handler]:
    """Handler decorator: verifies the bearer token (401) with the application's VERIFIER and the role (403); the
    handler finds the caller in request["principal"]."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            principal = await request.app[VERIFIER].principal(request)
            if roles and not principal.has_any(roles):
                raise ApiError(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}")
            request["principal"] = principal
            return await handler(request)

        return wrapper

    return decorate
