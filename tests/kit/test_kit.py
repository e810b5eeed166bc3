"""The kit's building blocks against real local servers (aiohttp's TestServer on a loopback port)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from chaoslab.lab.testing import eventually
from services.kit.config import CommonConfig, ConfigError, env_bool
from services.kit.errors import ApiError
from services.kit.faults import BURN_SLICE_S, FaultRegistry, FaultSpec
from services.kit.http_client import Upstream, UpstreamError
from services.kit.tokens import AUDIENCE, ISSUER, JwksVerifier

pytestmark = pytest.mark.quick


def test_config_names_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "eighty")
    with pytest.raises(ConfigError, match="HTTP_PORT must be an integer, got 'eighty'"):
        CommonConfig.from_env("demo", 1000)
    monkeypatch.setenv("INSTRUMENTATION", "maybe")
    with pytest.raises(ConfigError, match="INSTRUMENTATION"):
        env_bool("INSTRUMENTATION", True)


def test_config_defaults_follow_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PORT", "ADMIN_PORT", "DATABASE_URL", "REPLICA_ID"):
        monkeypatch.delenv(name, raising=False)
    cfg = CommonConfig.from_env("orders", 18003)
    assert (cfg.http_port, cfg.admin_port) == (18003, 19003)
    assert cfg.database_url == "sqlite+aiosqlite:///.chaoslab/data/orders.db"


def test_faults_expire_and_match_routes() -> None:
    reg = FaultRegistry()
    reg.add(FaultSpec(kind="error", ttl_s=0.2, route="/orders"))
    assert reg.pick(route="/orders") is not None
    assert reg.pick(route="/users/me") is None
    assert reg.pick(route="/orders", upstream="payments") is None  # request faults never hit calls
    time.sleep(0.25)
    assert reg.active() == [] and reg.pick(route="/orders") is None


def test_cpu_burns_lengthen_the_gil_slice_until_the_last_one_ends() -> None:
    normal = sys.getswitchinterval()
    reg = FaultRegistry()
    first = reg.add(FaultSpec(kind="cpu", ttl_s=5, percent=20))
    reg.add(FaultSpec(kind="cpu", ttl_s=0.3, percent=20))  # ends by its TTL first
    # CPython keeps the interval in whole microseconds: 0.007 comes back as 0.006999999999999999
    eventually(lambda: math.isclose(sys.getswitchinterval(), BURN_SLICE_S, abs_tol=1e-6), timeout_s=2, every_s=0.01,
               what="the burn slice while burns run")
    time.sleep(0.5)  # the second burn has ended by its TTL; the first still runs
    assert [f.id for f in reg.active()] == [first.id]
    assert math.isclose(sys.getswitchinterval(), BURN_SLICE_S, abs_tol=1e-6)
    reg.remove(first.id)
    eventually(lambda: math.isclose(sys.getswitchinterval(), normal, abs_tol=1e-6), timeout_s=2, every_s=0.01,
               what="the normal slice once the last burn ended")


def test_fault_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        FaultSpec(kind="latency")
    with pytest.raises(ValueError):
        FaultSpec(kind="error", percent=150)


def _keypair() -> tuple[rsa.RSAPrivateKey, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return key, {**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}


def _token(key: rsa.RSAPrivateKey, **over: object) -> str:
    now = int(time.time())
    claims = {"sub": "u1", "email": "a@b.c", "roles": ["customer"], "iat": now, "exp": now + 60,
              "iss": ISSUER, "aud": AUDIENCE, "typ": "access", **over}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


async def test_verifier_keeps_keys_through_an_auth_outage() -> None:
    key, jwk = _keypair()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        verifier = JwksVerifier(str(server.make_url("")).rstrip("/"), lambda: session, min_refetch_s=0)
        assert (await verifier.verify(_token(key)))["sub"] == "u1"
        await server.close()  # auth goes away
        verifier._refresh_s = 0  # force a refresh attempt: it fails, the cached key stays
        assert (await verifier.verify(_token(key)))["sub"] == "u1"
        with pytest.raises(ApiError) as expired:
            await verifier.verify(_token(key, exp=int(time.time()) - 10))
        assert expired.value.status == 401
        other, _ = _keypair()
        with pytest.raises(ApiError, match="invalid"):
            await verifier.verify(_token(other))
        unsigned = jwt.encode({"sub": "u1"}, None, algorithm="none")
        with pytest.raises(ApiError, match="RS256"):
            await verifier.verify(unsigned)


async def test_upstream_retries_idempotent_calls_and_opens_the_breaker() -> None:
    calls = {"n": 0}

    async def flaky(_: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"n": calls["n"]}, status=503 if calls["n"] % 3 else 200)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        up = Upstream("demo", str(server.make_url("")), lambda: session, FaultRegistry(), timeout_s=0.3, retries=2,
                      breaker=None)
        status, body = await up.request("GET", "/flaky", idempotent=True)
        assert (status, body["n"]) == (200, 3)  # two 503s retried away
        with pytest.raises(UpstreamError) as timeout:
            await up.request("GET", "/slow")
        assert timeout.value.status == 504
        for _ in range(6):  # consecutive failures open the breaker
            with contextlib.suppress(UpstreamError):
                await up.request("GET", "/slow")
        started = time.perf_counter()
        with pytest.raises(UpstreamError, match="circuit open"):
            await up.request("GET", "/flaky")
        assert time.perf_counter() - started < 0.1  # fails fast, no call made
    await server.close()


async def test_sqlite_writers_of_one_process_take_turns(tmp_path) -> None:
    """Write transactions of one replica queue in the kit, not inside SQLite (where two of them stalled each other
    for the whole busy timeout); reads do not queue behind a writer."""
    from sqlalchemy import text

    from services.kit.db import Database

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with db.session(write=True) as s:
            await s.execute(text("CREATE TABLE t (x INTEGER)"))
        first_in, release = asyncio.Event(), asyncio.Event()
        entered: list[str] = []

        async def writer(name: str, hold: asyncio.Event | None) -> None:
            async with db.session(write=True) as s:
                entered.append(name)
                first_in.set()
                await s.execute(text("INSERT INTO t VALUES (1)"))
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(writer("first", release))
        await first_in.wait()
        second = asyncio.create_task(writer("second", None))
        await asyncio.sleep(0.2)
        assert entered == ["first"]  # the second writer waits its turn in the kit
        async with db.session() as s:  # a reader is not held up by the open write transaction
            assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert entered == ["first", "second"]
        async with db.session() as s:
            assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 2
    finally:
        await db.close()
