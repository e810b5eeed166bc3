"""The scenario catalogue: a load shape, the journey mix it drives, and the thresholds it must meet.

Plain data (no Locust import), so `chaoslab load` can validate a command line and list the scenarios without
starting a load generator. The numbers are sized for the native lab on a 2-core machine with the shop's
default settings; every one of them can be changed per run (--users, --duration, --rate, --threshold).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from loadtests import shapes
from loadtests.thresholds import LatencyLimit, Thresholds

# Journey mixes (see journeys.py): which user classes a run starts.
MIX_SHOP = "shop"  # shoppers and one admin persona, with think time
MIX_RATE = "rate"  # shoppers paced to a constant request rate (one request per iteration)
MIX_ORDERS = "orders"  # POST /api/orders back to back: the path that saturates payments (scale-test)
MIXES = (MIX_SHOP, MIX_RATE, MIX_ORDERS)
# The user classes of a user's own locustfile (loadtests/with_your_users.py loads it next to the scenarios):
# their journeys, our shapes, thresholds, exporter and summary.
MIX_CUSTOM = "custom"

# A sign-up or login is an argon2 hash (tens of ms of CPU on auth's thread pool) and users sign up in bursts when
# a shape adds them, so the auth routes get their own limits; everything else is a few database and HTTP hops.
AUTH_ROUTES = ("/api/auth/register", "/api/auth/login")


@dataclass(frozen=True)
class Params:
    users: int
    duration_s: float
    rate: float | None = None  # requests/s, the rate scenario only


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    users: int  # default peak users
    duration_s: float  # default duration
    mix: str
    plan: Callable[[Params], list[shapes.Stage]]
    thresholds: Callable[[Params], Thresholds]
    rate: float | None = None  # default rate for a rate-driven scenario
    every_journey: bool = False  # start one admin persona even when the weights would not (tiny smoke runs)
    # Judge the steady part only (the last stage after it settled), not the sign-up burst before it: what a
    # fixed-rate run measures is the latency once the rate holds.
    judge_steady: bool = False

    def params(self, users: int | None = None, duration_s: float | None = None,
               rate: float | None = None) -> Params:
        """The run's parameters: the scenario's defaults where none are given. Raises ValueError on bad numbers."""
        if rate is not None and self.rate is None:
            raise ValueError(f"--rate applies to the rate scenario only, not to {self.name}")
        if rate is not None and not rate > 0:
            raise ValueError(f"the rate must be positive, not {rate:g}")
        if users is not None and users < 1:
            raise ValueError(f"users must be at least 1, not {users}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"the duration must be positive, not {duration_s:g} s")
        run_rate = rate if rate is not None else self.rate
        if users is None:
            users = shapes.rate_users(run_rate) if run_rate is not None else self.users
        return Params(users=users, duration_s=duration_s or self.duration_s, rate=run_rate)


def _limits(p95_ms: float, p99_ms: float, auth_p95_ms: float, auth_p99_ms: float) -> tuple[LatencyLimit, ...]:
    """Per request name, the sign-up and login apart; all requests together get twice the per-name limit, since
    a short run's tail is mostly sign-ups."""
    return (
        LatencyLimit("*", p95_ms, p99_ms),
        *(LatencyLimit(route, auth_p95_ms, auth_p99_ms) for route in AUTH_ROUTES),
        LatencyLimit("Aggregated", 2 * p95_ms, 2 * p99_ms),
    )


# Minimum throughputs are a fraction of what the users can send: a shopper waits 0.5-2 s between requests
# (about 0.8 requests/s), so a run far below that means requests hang or the generator stalled.
SHOPPER_RPS = 0.8


def _smoke(p: Params) -> Thresholds:
    return Thresholds(0.01, 0.3 * SHOPPER_RPS * p.users, _limits(500, 1000, 2000, 3000))


def _ramp(p: Params) -> Thresholds:
    # the mean user count of a 60% ramp and a 40% hold is 0.7 of the peak
    return Thresholds(0.01, 0.3 * SHOPPER_RPS * 0.7 * p.users, _limits(1000, 2000, 3000, 5000))


def _step(p: Params) -> Thresholds:
    return Thresholds(0.01, 0.3 * SHOPPER_RPS * 0.6 * p.users, _limits(1000, 2000, 3000, 5000))


def _spike(p: Params) -> Thresholds:
    # a spike may shed some load (429, 503) and queue the sign-ups: looser, but still bounded
    return Thresholds(0.05, 0.3 * SHOPPER_RPS * 0.2 * p.users, _limits(1500, 3000, 5000, 8000))


def _soak(p: Params) -> Thresholds:
    return Thresholds(0.005, 0.5 * SHOPPER_RPS * p.users, _limits(500, 1000, 2000, 3000))


def _rate(p: Params) -> Thresholds:
    assert p.rate is not None
    # the point of a fixed rate is to hold it: 90% of it, measured over the whole run including sign-up
    return Thresholds(0.01, 0.9 * p.rate, _limits(500, 1000, 2000, 3000))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("smoke", "a few users for a short while: every journey works, nothing is slow",
                 users=3, duration_s=20, mix=MIX_SHOP, every_journey=True,
                 plan=lambda p: shapes.constant(p.users, p.duration_s, "smoke"), thresholds=_smoke),
        Scenario("ramp", "a linear ramp to the peak over 60% of the run, then a hold",
                 users=20, duration_s=120, mix=MIX_SHOP,
                 plan=lambda p: shapes.ramp(p.users, p.duration_s), thresholds=_ramp),
        Scenario("step", "five equal steps up to the peak: one throughput/latency point per step (scaling curves)",
                 users=25, duration_s=100, mix=MIX_SHOP,
                 plan=lambda p: shapes.step(p.users, p.duration_s), thresholds=_step),
        Scenario("spike", "a baseline, a sudden spike to the peak, and the recovery after it",
                 users=30, duration_s=90, mix=MIX_SHOP,
                 plan=lambda p: shapes.spike(p.users, p.duration_s), thresholds=_spike),
        Scenario("soak", "a moderate load held for a long time (leaks, token expiry, growing queues)",
                 users=10, duration_s=1800, mix=MIX_SHOP,
                 plan=lambda p: shapes.soak(p.users, p.duration_s), thresholds=_soak),
        Scenario("rate", "a constant arrival rate (--rate requests/s) to measure latency at a fixed throughput",
                 users=0, duration_s=60, mix=MIX_RATE, rate=10.0, judge_steady=True,
                 plan=lambda p: shapes.constant(p.users, p.duration_s, "rate"), thresholds=_rate),
    )
}


_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "1h30m", "2m30s" (Locust's own forms). ValueError otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groupdict().values()):
        raise ValueError(f"bad duration {text!r}: use seconds or forms like 90s, 5m, 1h30m")
    h, m, s = (float(match[g] or 0) for g in ("h", "m", "s"))
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: it must be longer than zero")
    return seconds


def get(name: str) -> Scenario:
    """The scenario called `name`; ValueError naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def thresholds_for(scenario: Scenario, params: Params, mix: str | None = None) -> Thresholds:
    """The scenario's thresholds; a run with another mix (scale-test drives orders only) keeps the latency and
    error limits but not the throughput floor, which was sized for shoppers."""
    thresholds = scenario.thresholds(params)
    if mix is not None and mix != scenario.mix:
        thresholds = replace(thresholds, min_rps=0.0)
    return thresholds
