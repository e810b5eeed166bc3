"""auth, users and gateway as real processes, driven over HTTP (ports 21000-21999).

Forged tokens are signed with auth's real key, read from auth's own SQLite file, so that exactly one property of the
token is wrong at a time; a control token forged the same way but valid must pass, which proves the forging itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chaoslab.observability.traces import log_lines_of, spans_in
from services.gateway.rate_limit import TokenBucketLimiter, retry_after_header
from services.gateway.routes import required_roles
from support.procs import PortPool, ServiceProc, sqlite_url, start
from support.waiting import eventually

pytestmark = pytest.mark.services

PORTS = PortPool(21000, 21999)
ADMIN_TOKEN = "test-admin-token"
ADMIN_EMAIL = "root@chaoslab.test"
ADMIN_PASSWORD = "root-password-1"
T = 10  # seconds: every HTTP call has a timeout, no test can hang on a socket
PROBLEM = "application/problem+json"


# -- helpers ------------------------------------------------------------------------------------------------------
def common_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {"ADMIN_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "info", "SPANS_DIR": str(tmp / "spans"), **extra}


def start_auth(tmp: Path, db: Path, **kw: Any) -> ServiceProc:
    env = common_env(tmp, DATABASE_URL=sqlite_url(db), BOOTSTRAP_ADMIN=f"{ADMIN_EMAIL}:{ADMIN_PASSWORD}")
    env.update(kw.pop("env", {}))
    return start("auth", env, ports=PORTS, log_dir=tmp, **kw)


def start_users(tmp: Path, auth: ServiceProc, db: Path) -> ServiceProc:
    return start("users", common_env(tmp, DATABASE_URL=sqlite_url(db), AUTH_URL=auth.url), ports=PORTS, log_dir=tmp)


def start_gateway(tmp: Path, auth: ServiceProc, users_url: str, **env: str) -> ServiceProc:
    nobody = f"http://127.0.0.1:{PORTS.take()}"  # a port nothing listens on: an upstream that is down
    base = common_env(tmp, AUTH_URL=auth.url, USERS_URL=users_url, ORDERS_URL=nobody, NOTIFICATIONS_URL=nobody,
                      UPSTREAM_TIMEOUT_S="1.0")
    return start("gateway", {**base, **env}, ports=PORTS, log_dir=tmp)


def is_problem(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body = resp.json()
    assert body["status"] == status and body["title"] and "type" in body, body
    return body


def register(base: str, prefix: str = "/api/auth", email: str | None = None, password: str = "quiet-orbit-42",
             name: str = "Test User") -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
    resp = requests.post(f"{base}{prefix}/register", json={"email": email, "password": password, "name": name},
                         timeout=T)
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "password": password}


def login(base: str, email: str, password: str, prefix: str = "/api/auth") -> dict[str, Any]:
    resp = requests.post(f"{base}{prefix}/login", json={"email": email, "password": password}, timeout=T)
    assert resp.status_code == 200, resp.text
    return resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_customer(base: str, prefix: str = "/api/auth", name: str = "Test User") -> dict[str, Any]:
    user = register(base, prefix, name=name)
    return {**user, **login(base, user["email"], user["password"], prefix)}


def signing_key(db: Path) -> tuple[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kid, private_pem FROM signing_keys").fetchall()
    assert len(rows) == 1, rows
    kid, pem = rows[0]
    return kid, pem


def claims_for(user_id: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": user_id, "email": "x@example.test", "roles": ["customer"], "iat": now, "exp": now + 300,
              "iss": "chaoslab-auth", "aud": "chaoslab", "typ": "access"}
    claims.update(over)
    return claims


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hs256_with_public_key(private_pem: str, kid: str, claims: dict[str, Any]) -> str:
    """The algorithm-confusion attack: an HMAC keyed with the (public) RSA key in PEM form."""
    public_pem = serialization.load_pem_private_key(private_pem.encode(), password=None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def metric_value(admin_url: str, name: str, labels: dict[str, str] | None = None) -> float:
    text = requests.get(f"{admin_url}/metrics", timeout=T).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if not m:
            continue
        if labels and not all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            continue
        total += float(m.group(2))
    return total


def jwks_kids(url: str) -> list[str]:
    resp = requests.get(url, timeout=T)
    assert resp.status_code == 200, resp.text
    return [k["kid"] for k in resp.json()["keys"]]


# -- the shared stack -----------------------------------------------------------------------------------------------
class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.auth_db = tmp / "auth.db"
        self.procs: list[ServiceProc] = []
        self.auth = self._keep(start_auth(tmp, self.auth_db))
        self.users = self._keep(start_users(tmp, self.auth, tmp / "users.db"))
        self.gateway = self._keep(start_gateway(tmp, self.auth, self.users.url))
        self.gw = self.gateway.url

    def _keep(self, proc: ServiceProc) -> ServiceProc:
        self.procs.append(proc)
        return proc

    def admin_tokens(self) -> dict[str, Any]:
        return login(self.gw, ADMIN_EMAIL, ADMIN_PASSWORD)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def procs():
    """Processes a single test starts; all stopped afterwards, whatever happens."""
    started: list[ServiceProc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


# -- auth ----------------------------------------------------------------------------------------------------------
def test_register_login_refresh_and_jwks(stack: Stack) -> None:
    gw = stack.gw
    email = f"Mixed.Case-{uuid.uuid4().hex[:8]}@Example.TEST"
    resp = requests.post(f"{gw}/api/auth/register",
                         json={"email": email, "password": "stable yellow kettle", "name": "Ann"}, timeout=T)
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert set(user) == {"id", "email", "name", "roles"}
    assert user["email"] == email.lower() and user["name"] == "Ann" and user["roles"] == ["customer"]

    # the same email in another case is taken
    resp = requests.post(f"{gw}/api/auth/register",
                         json={"email": email.upper(), "password": "other yellow kettle 9", "name": "B"}, timeout=T)
    is_problem(resp, 409)

    tokens = login(gw, email.upper(), "stable yellow kettle")
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900

    keys = requests.get(f"{gw}/api/auth/.well-known/jwks.json", timeout=T).json()["keys"]
    assert keys == requests.get(f"{stack.auth.url}/.well-known/jwks.json", timeout=T).json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"
    public = jwt.PyJWK(keys[0]).key
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == keys[0]["kid"]
    access = jwt.decode(tokens["access_token"], public, algorithms=["RS256"], audience="chaoslab",
                        issuer="chaoslab-auth")
    assert access["sub"] == user["id"] and access["email"] == email.lower()
    assert access["roles"] == ["customer"] and access["typ"] == "access"
    assert access["exp"] - access["iat"] == 900
    refresh = jwt.decode(tokens["refresh_token"], public, algorithms=["RS256"], audience="chaoslab")
    assert refresh["typ"] == "refresh" and refresh["sub"] == user["id"]

    resp = requests.post(f"{gw}/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=T)
    assert resp.status_code == 200, resp.text
    renewed = resp.json()
    assert renewed["access_token"] != tokens["access_token"]
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert jwt.decode(renewed["access_token"], public, algorithms=["RS256"], audience="chaoslab")["typ"] == "access"
    resp = requests.get(f"{gw}/api/users/me", headers=bearer(renewed["access_token"]), timeout=T)
    assert resp.status_code == 200 and resp.json()["id"] == user["id"]

    # an access token is not a refresh token; garbage is not either
    for bad in (tokens["access_token"], "not.a.jwt"):
        resp = requests.post(f"{gw}/api/auth/refresh", json={"refresh_token": bad}, timeout=T)
        is_problem(resp, 401)


def test_bad_credentials_get_the_same_401(stack: Stack) -> None:
    user = register(stack.gw)
    wrong = requests.post(f"{stack.gw}/api/auth/login", json={"email": user["email"], "password": "wrong-pass"},
                          timeout=T)
    unknown = requests.post(f"{stack.gw}/api/auth/login",
                            json={"email": f"nobody-{uuid.uuid4().hex}@example.test", "password": "wrong-pass"},
                            timeout=T)
    assert is_problem(wrong, 401) == is_problem(unknown, 401)


def test_bootstrap_admin_exists_once(stack: Stack) -> None:
    tokens = stack.admin_tokens()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["admin"]
    with sqlite3.connect(stack.auth_db) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE email = ?", (ADMIN_EMAIL,)).fetchone() == (1,)


def test_malformed_json_and_unknown_fields_are_400_problems(stack: Stack) -> None:
    gw = stack.gw
    resp = requests.post(f"{gw}/api/auth/register", data=b'{"email": "a@b.c", "password":',
                         headers={"Content-Type": "application/json"}, timeout=T)
    is_problem(resp, 400)
    resp = requests.post(f"{gw}/api/auth/register",
                         json={"email": "a@b.test", "password": "blue-kettle-moon", "name": "x", "admin": True},
                         timeout=T)
    body = is_problem(resp, 400)
    assert any(e["field"] == "admin" for e in body["errors"]), body
    resp = requests.post(f"{gw}/api/auth/register", json={"email": "not-an-email", "password": "blue-kettle-moon"},
                         timeout=T)
    assert any(e["field"] == "email" for e in is_problem(resp, 400)["errors"])

    user = new_customer(gw)
    resp = requests.patch(f"{gw}/api/users/me", headers=bearer(user["access_token"]),
                          json={"name": "ok", "roles": ["admin"]}, timeout=T)
    assert any(e["field"] == "roles" for e in is_problem(resp, 400)["errors"])
    resp = requests.patch(f"{gw}/api/users/me", data=b"[not json", timeout=T,
                          headers={**bearer(user["access_token"]), "Content-Type": "application/json"})
    is_problem(resp, 400)


def test_oversized_bodies_are_413(stack: Stack) -> None:
    big = json.dumps({"email": "a@b.test", "password": "x" * 70_000}).encode()  # MAX_BODY_BYTES is 65536
    resp = requests.post(f"{stack.gw}/api/auth/register", data=big, timeout=T,
                         headers={"Content-Type": "application/json"})
    is_problem(resp, 413)

    def chunks():  # chunked transfer encoding: no Content-Length, the limit holds while reading
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    resp = requests.post(f"{stack.gw}/api/auth/register", data=chunks(), timeout=T,
                         headers={"Content-Type": "application/json"})
    is_problem(resp, 413)
    # just under the limit is forwarded (auth then refuses the too-long password with a 400)
    ok = json.dumps({"email": "a@b.test", "password": "x" * 60_000}).encode()
    resp = requests.post(f"{stack.gw}/api/auth/register", data=ok, timeout=T,
                         headers={"Content-Type": "application/json"})
    is_problem(resp, 400)


# -- users ---------------------------------------------------------------------------------------------------------
def test_profiles_and_roles(stack: Stack) -> None:
    gw = stack.gw
    alice = new_customer(gw, name="Alice")
    bob = new_customer(gw, name="Bob")
    admin = stack.admin_tokens()

    resp = requests.get(f"{gw}/api/users/me", headers=bearer(alice["access_token"]), timeout=T)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": alice["id"], "email": alice["email"], "name": "Alice", "address": ""}
    resp = requests.patch(f"{gw}/api/users/me", headers=bearer(alice["access_token"]),
                          json={"address": "1 Chaos Road"}, timeout=T)
    assert resp.status_code == 200 and resp.json()["address"] == "1 Chaos Road", resp.text
    assert resp.json()["name"] == "Alice"

    # self: yes; someone else: 403; admin: anyone; unknown id: 404 for the admin
    assert requests.get(f"{gw}/api/users/{alice['id']}", headers=bearer(alice["access_token"]),
                        timeout=T).json()["address"] == "1 Chaos Road"
    requests.get(f"{gw}/api/users/me", headers=bearer(bob["access_token"]), timeout=T)
    is_problem(requests.get(f"{gw}/api/users/{bob['id']}", headers=bearer(alice["access_token"]), timeout=T), 403)
    resp = requests.get(f"{gw}/api/users/{bob['id']}", headers=bearer(admin["access_token"]), timeout=T)
    assert resp.status_code == 200 and resp.json()["name"] == "Bob"
    is_problem(requests.get(f"{gw}/api/users/{uuid.uuid4()}", headers=bearer(admin["access_token"]), timeout=T),
               404)

    # GET /api/users: the gateway refuses a customer before forwarding; users refuses them too on its own
    before = metric_value(stack.users.admin_url, "http_server_request_duration_seconds_count", {"route": "/users"})
    is_problem(requests.get(f"{gw}/api/users", headers=bearer(alice["access_token"]), timeout=T), 403)
    is_problem(requests.get(f"{gw}/api/users/", headers=bearer(alice["access_token"]), timeout=T), 403)
    after = metric_value(stack.users.admin_url, "http_server_request_duration_seconds_count", {"route": "/users"})
    assert after == before, "the gateway forwarded a request it should have refused"
    is_problem(requests.get(f"{stack.users.url}/users", headers=bearer(alice["access_token"]), timeout=T), 403)

    resp = requests.get(f"{gw}/api/users", headers=bearer(admin["access_token"]), timeout=T)
    assert resp.status_code == 200, resp.text
    ids = {p["id"] for p in resp.json()["items"]}
    assert {alice["id"], bob["id"]} <= ids


def test_concurrent_first_access_creates_one_profile(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = new_customer(stack.gw)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda _: requests.get(f"{stack.users.url}/users/me", headers=bearer(user["access_token"]), timeout=T),
            range(8)))
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    with sqlite3.connect(stack.tmp / "users.db") as conn:
        assert conn.execute("SELECT count(*) FROM profiles WHERE id = ?", (user["id"],)).fetchone() == (1,)


# -- gateway: tokens -------------------------------------------------------------------------------------------------
def test_bad_tokens_are_401_through_the_gateway(stack: Stack) -> None:
    gw = stack.gw
    user = new_customer(gw)
    kid, pem = signing_key(stack.auth_db)
    url = f"{gw}/api/users/me"

    def get(token: str | None) -> requests.Response:
        return requests.get(url, headers=bearer(token) if token else {}, timeout=T)

    # the control: forged the same way, but valid, passes
    good = jwt.encode(claims_for(user["id"]), pem, algorithm="RS256", headers={"kid": kid})
    assert get(good).status_code == 200
    assert get(user["access_token"]).status_code == 200

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, payload, signature = user["access_token"].split(".")
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    bad_tokens = {
        "expired": jwt.encode(claims_for(user["id"], iat=int(time.time()) - 600, exp=int(time.time()) - 300),
                              pem, algorithm="RS256", headers={"kid": kid}),
        "tampered": f"{header}.{b64({**claims, 'roles': ['admin']})}.{signature}",
        "wrong key, same kid": jwt.encode(claims_for(user["id"]), other_key, algorithm="RS256",
                                          headers={"kid": kid}),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims_for(user['id']))}.",
        "alg HS256 keyed with the public key": hs256_with_public_key(pem, kid, claims_for(user["id"])),
        "wrong audience": jwt.encode(claims_for(user["id"], aud="someone-else"), pem, algorithm="RS256",
                                     headers={"kid": kid}),
        "wrong issuer": jwt.encode(claims_for(user["id"], iss="evil"), pem, algorithm="RS256", headers={"kid": kid}),
        "refresh token": user["refresh_token"],
        "unknown kid": jwt.encode(claims_for(user["id"]), other_key, algorithm="RS256", headers={"kid": "nope"}),
        "garbage": "abc.def.ghi",
        "missing": None,
    }
    for what, token in bad_tokens.items():
        resp = get(token)
        assert resp.status_code == 401, (what, resp.status_code, resp.text)
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), (what, resp.headers)
        is_problem(resp, 401)


def test_trace_context_and_one_log_line_per_request(stack: Stack) -> None:
    user = new_customer(stack.gw)
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    resp = requests.get(f"{stack.gw}/api/users/me", timeout=T,
                        headers={**bearer(user["access_token"]), "traceparent": traceparent})
    assert resp.status_code == 200

    def lines(proc: ServiceProc) -> list[dict[str, Any]]:
        out = []
        for line in proc.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return [d for d in out if d.get("trace_id") == trace_id and d.get("message") == "request"]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (lines(stack.gateway) and lines(stack.users)):
        time.sleep(0.1)
    gw_lines, users_lines = lines(stack.gateway), lines(stack.users)
    assert len(gw_lines) == 1, gw_lines  # exactly one access line, with the gateway's own fields
    line = gw_lines[0]
    assert line["method"] == "GET" and line["status"] == 200 and line["upstream"] == "users"
    assert line["user"] == user["id"] and "duration_ms" in line and line["client"] == "127.0.0.1"
    assert len(users_lines) == 1 and users_lines[0]["route"] == "/users/me"  # the trace reached users


def test_traces_per_second_caps_new_traces_and_every_hop_follows(tmp_path: Path, procs: list[ServiceProc]) -> None:
    """The gateway may start 2 traces a second: of a quick burst, about 2 are recorded, users records exactly those
    (it follows the gateway's decision, though its own budget is 20), and every answer still names its trace,
    whose log lines are there whether it was recorded or not."""
    auth = start_auth(tmp_path, tmp_path / "auth.db")
    procs.append(auth)
    users = start_users(tmp_path, auth, tmp_path / "users.db")
    procs.append(users)
    gw = start_gateway(tmp_path, auth, users.url, TRACES_PER_SECOND="2")
    procs.append(gw)
    user = new_customer(gw.url)
    time.sleep(1.2)  # the sign-up's requests used tokens: a full bucket again
    started = time.monotonic()
    answers = [requests.get(f"{gw.url}/api/users/me", headers=bearer(user["access_token"]), timeout=T)
               for _ in range(10)]
    burst_s = time.monotonic() - started
    assert all(r.status_code == 200 for r in answers)
    ids = [r.headers["X-Trace-Id"] for r in answers]
    assert len(set(ids)) == 10

    spans_dir = tmp_path / "spans"
    at_most = 2 + int(burst_s * 2)  # a full bucket, and what it refilled during the burst

    def recorded(service: str) -> set[str]:
        return {s["trace_id"] for s in spans_in(spans_dir) if s["service"] == service and s["kind"] == "server"
                and s["trace_id"] in ids}

    # the batch processors export about every second
    eventually(lambda: len(recorded("gateway")) >= 2, timeout_s=15, what="the gateway's first two traces of the burst")
    time.sleep(1.5)  # anything else the burst recorded is exported by now
    gw_traced = recorded("gateway")
    assert 2 <= len(gw_traced) <= at_most, (len(gw_traced), burst_s)
    assert ids[0] in gw_traced and ids[1] in gw_traced  # a quiet spell's burst starts traced
    assert recorded("users") == gw_traced

    dropped = next(i for i in ids if i not in gw_traced)
    # every process of this test logs to tmp_path/<name>.log, as the lab's replicas do to their logs dir
    eventually(lambda: {line["service"] for line in log_lines_of(tmp_path, dropped)} == {"gateway", "users"},
               timeout_s=10, what="the untraced request's log lines in gateway and users")


# -- gateway: limits -------------------------------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after(stack: Stack, procs: list[ServiceProc]) -> None:
    gw = start_gateway(stack.tmp, stack.auth, stack.users.url, RATE_LIMIT_RPS="0.4", RATE_LIMIT_BURST="2")
    procs.append(gw)
    alice = new_customer(stack.auth.url, prefix="/auth")
    bob = new_customer(stack.auth.url, prefix="/auth")

    def me(user: dict[str, Any]) -> requests.Response:
        return requests.get(f"{gw.url}/api/users/me", headers=bearer(user["access_token"]), timeout=T)

    started = time.monotonic()
    assert [me(alice).status_code for _ in range(2)] == [200, 200]
    resp = me(alice)
    elapsed = time.monotonic() - started
    is_problem(resp, 429)
    # an empty bucket has a token again in 1 / 0.4 = 2.5 s less the refill since the first request:
    # Retry-After is that in whole seconds, rounded up (3 unless this machine took over 0.5 s for three requests)
    allowed = {str(n) for n in range(max(1, math.ceil(2.5 - elapsed)), 4)}
    assert resp.headers["Retry-After"] in allowed, (resp.headers, elapsed)
    assert me(bob).status_code == 200  # per client: bob has his own bucket
    assert metric_value(gw.admin_url, "gateway_ratelimit_rejections_total") == 1.0

    time.sleep(2.6)
    assert me(alice).status_code == 200  # and the bucket refills

    # without a token, the client is the remote IP (here: auth's public routes)
    codes = [requests.post(f"{gw.url}/api/auth/login", json={"email": "x@y.test", "password": "p"},
                           timeout=T).status_code for _ in range(3)]
    assert codes[:2] == [401, 401] and codes[2] == 429, codes


def test_token_bucket_is_bounded_and_exact() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(2.0, 4, max_clients=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(4)] == [0.0] * 4
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert retry_after_header(0.5) == "1" and retry_after_header(1.01) == "2" and retry_after_header(2.0) == "2"
    for client in "bcdef":
        limiter.acquire(client)
    assert len(limiter) == 3  # never more than max_clients
    now[0] += 2.0  # burst / rate: every bucket is full again, i.e. idle, and goes
    limiter.acquire("g")
    assert len(limiter) == 1
    assert required_roles("GET", "/api/users/") == ("admin",)
    assert required_roles("GET", "/api/users/me") == ("customer", "admin")


# -- gateway: upstream failures ---------------------------------------------------------------------------------------
def test_slow_upstream_is_504_quickly(stack: Stack) -> None:
    user = new_customer(stack.gw)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    resp = requests.post(f"{stack.users.admin_url}/admin/faults", headers=admin, timeout=T,
                         json={"kind": "latency", "latency_ms": 8000, "ttl_s": 60, "route": "/users/me"})
    assert resp.status_code == 201, resp.text
    try:
        started = time.monotonic()
        resp = requests.get(f"{stack.gw}/api/users/me", headers=bearer(user["access_token"]), timeout=T)
        elapsed = time.monotonic() - started
        is_problem(resp, 504)
        assert elapsed < 4.0, elapsed  # 1 s per attempt, one retry for a GET: never the 8 s of the upstream
    finally:
        requests.delete(f"{stack.users.admin_url}/admin/faults", headers=admin, timeout=T)
    resp = requests.get(f"{stack.gw}/api/users/me", headers=bearer(user["access_token"]), timeout=T)
    assert resp.status_code == 200, resp.text


def test_upstream_down_is_503_quickly(stack: Stack, procs: list[ServiceProc]) -> None:
    users = start_users(stack.tmp, stack.auth, stack.tmp / "users-b.db")
    procs.append(users)
    gw = start_gateway(stack.tmp, stack.auth, users.url)
    procs.append(gw)
    user = new_customer(stack.auth.url, prefix="/auth")
    url = f"{gw.url}/api/users/me"
    assert requests.get(url, headers=bearer(user["access_token"]), timeout=T).status_code == 200
    users.stop()
    for _ in range(8):  # unreachable, then the breaker opens: 503 every time, fast
        started = time.monotonic()
        resp = requests.get(url, headers=bearer(user["access_token"]), timeout=T)
        assert time.monotonic() - started < 2.0
        is_problem(resp, 503)
    assert "circuit open" in resp.json()["detail"], resp.json()
    # orders is configured at a port where nothing listens
    is_problem(requests.get(f"{gw.url}/api/orders", headers=bearer(user["access_token"]), timeout=T), 503)


def test_existing_token_works_while_auth_is_down(tmp_path: Path, procs: list[ServiceProc]) -> None:
    auth = start_auth(tmp_path, tmp_path / "auth.db")
    procs.append(auth)
    users = start_users(tmp_path, auth, tmp_path / "users.db")
    procs.append(users)
    gw = start_gateway(tmp_path, auth, users.url)
    procs.append(gw)
    user = new_customer(gw.url)
    url = f"{gw.url}/api/users/me"
    assert requests.get(url, headers=bearer(user["access_token"]), timeout=T).status_code == 200
    auth.stop()
    for _ in range(3):
        resp = requests.get(url, headers=bearer(user["access_token"]), timeout=T)
        assert resp.status_code == 200, resp.text
    # but a login needs auth: 503 problem, quickly
    resp = requests.post(f"{gw.url}/api/auth/login", json={"email": user["email"], "password": user["password"]},
                         timeout=T)
    is_problem(resp, 503)


# -- auth: the signing key -------------------------------------------------------------------------------------------
def test_two_replicas_on_a_fresh_database_sign_with_one_key(tmp_path: Path, procs: list[ServiceProc]) -> None:
    db = tmp_path / "auth.db"
    http_port = PORTS.take()
    replicas = [start_auth(tmp_path, db, http_port=http_port, wait=False, name=f"auth-{i}") for i in (1, 2)]
    procs.extend(replicas)
    for r in replicas:
        r.wait_ready()
    base = replicas[0].url
    user = register(base, "/auth")
    kids = set()
    for _ in range(24):  # a new connection each time: SO_REUSEPORT spreads them over both replicas
        tokens = login(base, user["email"], user["password"], "/auth")
        kids.add(jwt.get_unverified_header(tokens["access_token"])["kid"])
    served = [metric_value(r.admin_url, "http_server_request_duration_seconds_count", {"route": "/auth/login"})
              for r in replicas]
    assert all(n > 0 for n in served), f"one replica served every login: {served}"
    kid, _ = signing_key(db)
    assert kids == {kid}
    assert set(jwks_kids(f"{base}/.well-known/jwks.json")) == {kid}
    with sqlite3.connect(db) as conn:  # and the bootstrap admin exists once
        assert conn.execute("SELECT count(*) FROM users WHERE email = ?", (ADMIN_EMAIL,)).fetchone() == (1,)


def test_restarted_auth_keeps_its_key(tmp_path: Path, procs: list[ServiceProc]) -> None:
    db = tmp_path / "auth.db"
    first = start_auth(tmp_path, db)
    procs.append(first)
    kids = jwks_kids(f"{first.url}/auth/.well-known/jwks.json")
    user = new_customer(first.url, "/auth")
    first.stop()

    second = start_auth(tmp_path, db)
    procs.append(second)
    assert jwks_kids(f"{second.url}/.well-known/jwks.json") == kids
    # a refresh token issued before the restart still verifies, and the user and the admin still log in
    resp = requests.post(f"{second.url}/auth/refresh", json={"refresh_token": user["refresh_token"]}, timeout=T)
    assert resp.status_code == 200, resp.text
    assert jwt.get_unverified_header(resp.json()["access_token"])["kid"] == kids[0]
    login(second.url, user["email"], user["password"], "/auth")
    login(second.url, ADMIN_EMAIL, ADMIN_PASSWORD, "/auth")
