"""The kit's building blocks against real local servers (aiohttp's TestServer on a loopback port)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import sys
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from services.contract import JWT_AUDIENCE, JWT_ISSUER
from services.kit.config import CommonConfig, ConfigError, env_bool
from services.kit.errors import ApiError
from services.kit.faults import BURN_SLICE_S, FaultRegistry, FaultSpec
from services.kit.http_client import Upstream, UpstreamError
from services.kit.sampling import RateLimitedRatioSampler, lab_sampler
from services.kit.tokens import JwksVerifier
from support.waiting import eventually

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
              "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "typ": "access", **over}
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
            await verifier.verify(_token(key, exp=int(time.time()) - 120))  # past the 60 s leeway
        assert expired.value.status == 401
        other, _ = _keypair()
        with pytest.raises(ApiError, match="invalid"):
            await verifier.verify(_token(other))
        unsigned = jwt.encode({"sub": "u1"}, None, algorithm="none")
        with pytest.raises(ApiError, match="RS256"):
            await verifier.verify(unsigned)


async def test_the_verifier_allows_a_leeway_for_clock_skew_then_names_the_clock() -> None:
    key, jwk = _keypair()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            verifier = JwksVerifier(str(server.make_url("")).rstrip("/"), lambda: session, leeway_s=60)
            now = int(time.time())
            # within the leeway: an issuer 30 s ahead, a token 30 s past its exp
            assert (await verifier.verify(_token(key, iat=now + 30, exp=now + 90)))["sub"] == "u1"
            assert (await verifier.verify(_token(key, iat=now - 100, exp=now - 30)))["sub"] == "u1"
            with pytest.raises(ApiError) as expired:
                await verifier.verify(_token(key, iat=now - 700, exp=now - 100))
            problem = expired.value
            assert problem.status == 401 and problem.extra["type"] == "https://chaoslab.dev/problems/token-expired"
            assert re.search(r"expired 10[012] s ago by this service's clock", problem.detail), problem.detail
            assert problem.extra["expired_at"] == now - 100
            with pytest.raises(ApiError) as early:
                await verifier.verify(_token(key, iat=now + 600, exp=now + 1500))
            assert early.value.extra["type"] == "https://chaoslab.dev/problems/token-not-yet-valid"
            assert re.search(r"issued (59[89]|600) s in the future", early.value.detail), early.value.detail
    finally:
        await server.close()


async def test_upstream_retries_idempotent_calls_and_opens_the_breaker() -> None:
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] % 3 and request.transport is not None:
            request.transport.abort()  # no answer: the connection drops, which is worth another attempt
        return web.json_response({"n": calls["n"]})

    async def unavailable(_: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"n": calls["n"]}, status=503)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        up = Upstream("demo", str(server.make_url("")), lambda: session, FaultRegistry(), timeout_s=0.3, retries=2,
                      breaker=None)
        status, body = await up.request("GET", "/flaky", idempotent=True)
        assert (status, body["n"]) == (200, 3)  # two dropped connections retried away
        # An answer is passed on as it is, 5xx included: not retried, and no failure for the breaker that every
        # client shares (resilience.py), however many come.
        for n in range(4, 14):
            status, body = await up.request("GET", "/unavailable", idempotent=True)
            assert (status, body["n"]) == (503, n)
        assert up.breaker.current_state.name == "CLOSED"
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


# -- trace sampling -------------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sampled(sampler: Sampler, n: int, parent: Context | None = None) -> int:
    return sum(sampler.should_sample(parent, random.getrandbits(128), "GET /x").decision.is_sampled()
               for _ in range(n))


def test_sampler_caps_new_traces_per_second_with_a_bucket_of_one_second() -> None:
    clock = _Clock()
    sampler = RateLimitedRatioSampler(1.0, 3, clock=clock)
    assert _sampled(sampler, 10) == 3  # a full bucket: the burst's first three
    clock.now += 0.34
    assert _sampled(sampler, 10) == 1  # refilled at 3 a second
    clock.now += 60
    assert _sampled(sampler, 10) == 3  # never more than a second's worth saved up
    assert _sampled(RateLimitedRatioSampler(1.0, 0, clock=clock), 500) == 500  # 0: no limit
    assert _sampled(RateLimitedRatioSampler(0.0, 3, clock=clock), 50) == 0  # the ratio decides first
    half = RateLimitedRatioSampler(0.5, 0, clock=clock)
    assert 400 < _sampled(half, 1000) < 600
    assert _sampled(RateLimitedRatioSampler(1.0, 0.5, clock=clock), 5) == 1  # below 1/s: a bucket of one
    with pytest.raises(ValueError, match="per_second"):
        RateLimitedRatioSampler(1.0, -1)


def test_later_hops_follow_the_first_hops_decision_not_their_own_budget() -> None:
    sampler = lab_sampler(1.0, 1)
    assert _sampled(sampler, 5) == 1  # the bucket is now empty for new traces (it refills in a second)

    def remote(sampled: bool) -> Context:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        ctx = SpanContext(random.getrandbits(128), random.getrandbits(64), is_remote=True, trace_flags=flags)
        return set_span_in_context(NonRecordingSpan(ctx))

    assert _sampled(sampler, 20, remote(True)) == 20
    assert _sampled(sampler, 20, remote(False)) == 0


def test_config_reads_and_checks_traces_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACES_PER_SECOND", raising=False)
    assert CommonConfig.from_env("demo", 1000).traces_per_second == 20
    monkeypatch.setenv("TRACES_PER_SECOND", "0")
    assert CommonConfig.from_env("demo", 1000).traces_per_second == 0
    monkeypatch.setenv("TRACES_PER_SECOND", "-2")
    with pytest.raises(ConfigError, match="TRACES_PER_SECOND must be 0 .no limit. or more, got -2"):
        CommonConfig.from_env("demo", 1000)
    monkeypatch.setenv("TRACES_PER_SECOND", "lots")
    with pytest.raises(ConfigError, match="TRACES_PER_SECOND must be a number, got 'lots'"):
        CommonConfig.from_env("demo", 1000)
