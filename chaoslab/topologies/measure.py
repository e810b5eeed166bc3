"""What a topology costs and how its clients fare (shared by `chaoslab topologies compare` and
bench/topologies.py): process CPU, memory (PSS) and listening ports; orders at a fixed rate (open loop: each sent
at its time whatever the others do), at saturation (closed loop), and the shop's journeys at a fixed rate with every
answer kept, so that a fault's blast radius can be read per journey."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

from chaoslab.clients import shop

ORDER = shop.SAMPLE_ORDER


def cpu_s(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds the processes used so far (those gone count 0)."""
    used = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            used += times.user + times.system
    return used


def pss_mb(procs: list[psutil.Process]) -> float:
    """Proportional set size of the processes, MB: shared pages counted once across them."""
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().pss
    return round(total / 2**20, 1)


def listening_ports(procs: list[psutil.Process]) -> list[int]:
    ports: set[int] = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            ports.update(c.laddr.port for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN)
    return sorted(ports)


async def sign_up(url: str, n: int, prefix: str = "topologies") -> list[str]:
    """n customers' access tokens (register and log in through the gateway)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one() -> str:
            creds = {"email": f"{prefix}-{uuid.uuid4().hex[:12]}@example.com", "password": "a long test password"}
            async with http.post(url + shop.REGISTER, json={**creds, "name": "Customer"}) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"sign-up: {resp.status} {(await resp.text())[:200]}")
            async with http.post(url + shop.LOGIN, json=creds) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"login: {resp.status} {(await resp.text())[:200]}")
                return str((await resp.json())["access_token"])

        return list(await asyncio.gather(*(one() for _ in range(n))))


class Tally:
    """Answers by status (0: no answer), the first error's text."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.first_error: str | None = None

    def add(self, status: int, detail: str = "") -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 201 and self.first_error is None:
            self.first_error = f"{status} {detail}"[:300]

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return self.total - self.statuses.get(201, 0)

    def summary(self) -> dict[str, Any]:
        return {"requests": self.total, "errors": self.errors,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "first_error": self.first_error}


async def post_order(http: aiohttp.ClientSession, url: str, token: str, tally: Tally) -> int:
    try:
        async with http.post(url + shop.ORDERS, json=ORDER, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}) as resp:
            body = await resp.read()
            tally.add(resp.status, "" if resp.status == 201 else body.decode(errors="replace")[:200])
            return resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        tally.add(0, exc.__class__.__name__)
        return 0


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=shop.ORDER_TIMEOUT_S),
                                 connector=aiohttp.TCPConnector(limit=0))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


async def open_loop(url: str, tokens: list[str], rate: float, seconds: float, tally: Tally) -> dict[str, Any]:
    """Orders at a fixed rate, each sent at its scheduled time whatever the others do; latency from that time."""
    latencies: list[float] = []
    count = int(rate * seconds)
    async with session() as http:
        t0 = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if await post_order(http, url, tokens[i % len(tokens)], tally) == 201:
                latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(one(i) for i in range(count)))
    latencies.sort()
    return {"orders": count, "answered_201": len(latencies), "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1) if latencies else None}


async def closed_loop(url: str, tokens: list[str], seconds: float, ramp_s: float, tally: Tally,
                      procs: list[psutil.Process], broker: list[psutil.Process] | None = None) -> dict[str, Any]:
    """Every customer places orders back to back; counted: the 201s answered inside [ramp, ramp + seconds], and
    the CPU the topology's processes (and the broker's) used over that window."""
    ok_in_window = 0
    start = time.perf_counter() + ramp_s
    end = start + seconds
    cpu: dict[str, float] = {}
    broker = broker or []

    async def worker(token: str, http: aiohttp.ClientSession) -> None:
        nonlocal ok_in_window
        while time.perf_counter() < end:
            status = await post_order(http, url, token, tally)
            done = time.perf_counter()
            if status == 201 and start <= done <= end:
                ok_in_window += 1

    async def meter() -> None:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        cpu["topology_before"], cpu["broker_before"] = cpu_s(procs), cpu_s(broker)
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        cpu["topology_after"], cpu["broker_after"] = cpu_s(procs), cpu_s(broker)

    async with session() as http:
        await asyncio.gather(meter(), *(worker(t, http) for t in tokens))
    orders = max(ok_in_window, 1)
    used = cpu["topology_after"] - cpu["topology_before"]
    return {"orders_201": ok_in_window, "throughput_rps": round(ok_in_window / seconds, 1),
            "cpu_s": round(used, 2), "cpu_ms_per_order": round(used * 1000 / orders, 2),
            "cpu_utilisation": round(used / seconds, 2),
            "broker_cpu_ms_per_order": round((cpu["broker_after"] - cpu["broker_before"]) * 1000 / orders, 2),
            "_cpu_before": cpu["topology_before"]}


# -- the shop's journeys, every answer kept ---------------------------------------------------------------------

# What a customer does, one request each: the catalogue (public: the gateway and orders), their profile (users),
# an order (users, payments, the outbox), their notifications.
JOURNEYS: tuple[str, ...] = ("catalogue", "profile", "order", "notifications")


@dataclass(frozen=True)
class Answer:
    journey: str
    at: float  # seconds since the run's start, when it was sent
    ok: bool


async def _journey(http: aiohttp.ClientSession, url: str, journey: str, token: str) -> bool:
    auth = {"Authorization": f"Bearer {token}"}
    try:
        if journey == "catalogue":
            async with http.get(url + shop.CATALOGUE) as resp:
                await resp.read()
                return resp.status == 200
        if journey == "profile":
            async with http.get(url + shop.ME, headers=auth) as resp:
                await resp.read()
                return resp.status == 200
        if journey == "notifications":
            async with http.get(url + shop.NOTIFICATIONS, headers=auth) as resp:
                await resp.read()
                return resp.status == 200
        async with http.post(url + shop.ORDERS, json=ORDER,
                             headers={**auth, "Idempotency-Key": uuid.uuid4().hex}) as resp:
            await resp.read()
            return resp.status == 201
    except (TimeoutError, aiohttp.ClientError):
        return False


async def journeys(url: str, tokens: list[str], rate: float, seconds: float,
                   events: Sequence[tuple[float, Callable[[], Any]]] = ()) -> list[Answer]:
    """The journeys in turn at `rate` requests a second for `seconds`, every answer kept; each of `events`
    (seconds from the start, a blocking call: a fault, a restart) runs in a thread at its time, while the load
    goes on. Returns the answers in the order they were sent."""
    answers: list[Answer] = []
    count = int(rate * seconds)
    t0 = time.perf_counter() + 0.2

    async def one(http: aiohttp.ClientSession, i: int) -> None:
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        journey = JOURNEYS[i % len(JOURNEYS)]
        answers.append(Answer(journey, round(due - t0, 3), await _journey(http, url, journey, tokens[i % len(tokens)])))

    async def event(at: float, call: Callable[[], Any]) -> None:
        await asyncio.sleep(max(0.0, t0 + at - time.perf_counter()))
        await asyncio.to_thread(call)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5),
                                     connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(one(http, i) for i in range(count)), *(event(at, call) for at, call in events))
    return sorted(answers, key=lambda a: a.at)


def blast_radius(answers: list[Answer], start: float, end: float) -> dict[str, Any]:
    """Per journey, over [start, end): the share of its requests that failed and for how long it failed (first
    to last failure); and which journeys failed at all."""
    out: dict[str, Any] = {}
    for journey in JOURNEYS:
        mine = [a for a in answers if a.journey == journey and start <= a.at < end]
        failed = [a.at for a in mine if not a.ok]
        out[journey] = {"requests": len(mine), "failed": len(failed),
                        "failed_share": round(len(failed) / len(mine), 3) if mine else 0.0,
                        "failing_s": round(failed[-1] - failed[0], 1) if failed else 0.0}
    out["journeys_failed"] = [j for j in JOURNEYS if out[j]["failed"]]
    window = [a for a in answers if start <= a.at < end]
    out["failed_share"] = round(sum(not a.ok for a in window) / len(window), 3) if window else 0.0
    return out
