"""Load shapes as plain data: a plan is a list of stages, each holding a target user count until a run time.

Kept free of Locust so the math is unit-tested on its own; locustfile.ScenarioShape turns a plan into
Locust's `tick()` answers. Every plan is scaled by the run's peak users and duration, so `--users` and
`--duration` stretch a scenario without changing its form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Spawning a user costs a sign-up and a login (two argon2 hashes on auth), so "at once" means this many per second:
# fast enough to be a step or a spike, slow enough that the shape, not a sign-up storm, is what gets measured.
FAST_SPAWN_PER_S = 20.0


@dataclass(frozen=True)
class Stage:
    until_s: float  # the stage lasts from the previous stage's end until this run time
    users: int  # target user count during the stage
    spawn_rate: float  # users started (or stopped) per second to reach the target
    label: str


def duration(plan: list[Stage]) -> float:
    return plan[-1].until_s if plan else 0.0


def stage_index(plan: list[Stage], run_time_s: float) -> int | None:
    """The index of the stage running at `run_time_s`, None once the plan is over."""
    for i, stage in enumerate(plan):
        if run_time_s < stage.until_s:
            return i
    return None


def target_at(plan: list[Stage], run_time_s: float) -> tuple[int, float] | None:
    """What Locust's LoadTestShape.tick() answers: (users, spawn rate), or None to end the run."""
    i = stage_index(plan, run_time_s)
    if i is None:
        return None
    return plan[i].users, plan[i].spawn_rate


def stage_start(plan: list[Stage], index: int) -> float:
    return plan[index - 1].until_s if index > 0 else 0.0


def _fast(delta_users: int) -> float:
    return float(max(1.0, min(FAST_SPAWN_PER_S, abs(delta_users) or 1)))


def _check(users: int, duration_s: float) -> None:
    if users < 1:
        raise ValueError(f"users must be at least 1, not {users}")
    if not duration_s > 0:
        raise ValueError(f"duration must be positive, not {duration_s}")


def constant(users: int, duration_s: float, label: str = "hold") -> list[Stage]:
    """All users as fast as sign-up allows, held for the whole duration (smoke, rate)."""
    _check(users, duration_s)
    return [Stage(duration_s, users, _fast(users), label)]


def ramp(users: int, duration_s: float, *, ramp_fraction: float = 0.6) -> list[Stage]:
    """A linear ramp from 0 to `users` over the first `ramp_fraction` of the run, then a hold at the peak.

    Locust starts users at `spawn_rate` per second until the target, so one stage with rate users/ramp_time
    is the linear ramp.
    """
    _check(users, duration_s)
    ramp_s = duration_s * ramp_fraction
    return [
        Stage(ramp_s, users, max(users / ramp_s, 0.01), "ramp"),
        Stage(duration_s, users, _fast(users), "hold"),
    ]


def step_users(users: int, steps: int) -> list[int]:
    """User counts of `steps` equal steps up to `users`: 25 users in 5 steps -> 5, 10, 15, 20, 25."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    counts = [max(1, round(users * (i + 1) / steps)) for i in range(steps)]
    for i in range(1, steps):  # never step down when users < steps
        counts[i] = max(counts[i], counts[i - 1])
    return counts


def step(users: int, duration_s: float, *, steps: int = 5) -> list[Stage]:
    """Equal steps of users, each held for duration/steps: a throughput curve, one point per step."""
    _check(users, duration_s)
    step_s = duration_s / steps
    counts = step_users(users, steps)
    out, previous = [], 0
    for i, count in enumerate(counts):
        out.append(Stage(step_s * (i + 1), count, _fast(count - previous), f"step {i + 1}: {count} users"))
        previous = count
    return out


def spike(users: int, duration_s: float, *, baseline_fraction: float = 0.2) -> list[Stage]:
    """A baseline (a fifth of the peak), a sudden spike to the peak, and back to the baseline to watch recovery.

    Thirds of the run: 30% baseline, 30% spike, 40% recovery.
    """
    _check(users, duration_s)
    baseline = max(1, round(users * baseline_fraction))
    return [
        Stage(duration_s * 0.3, baseline, _fast(baseline), "baseline"),
        Stage(duration_s * 0.6, users, _fast(users - baseline), "spike"),
        Stage(duration_s, baseline, _fast(users - baseline), "recovery"),
    ]


def soak(users: int, duration_s: float) -> list[Stage]:
    """A gentle ramp (a tenth of the run, at most a minute), then the same load for a long time."""
    _check(users, duration_s)
    ramp_s = min(60.0, duration_s * 0.1)
    return [
        Stage(ramp_s, users, max(users / ramp_s, 0.01), "ramp"),
        Stage(duration_s, users, _fast(users), "soak"),
    ]


# --- constant arrival rate ---------------------------------------------------------------------------------
# Locust is a closed model: U users each loop "request, wait". With Locust's constant_throughput(r) wait time a
# user starts one iteration every 1/r seconds whatever the response time, as long as a response takes less than
# 1/r. Each iteration of the rate journey sends exactly one request, so U users at r = R/U each give R requests/s.
# The pacing interval U/R must stay above the slowest responses, otherwise users fall behind and the achieved rate
# drops below R (the scenario's minimum-throughput threshold reports that).

RATE_PACING_S = 1.0  # default pacing interval per user: U = R * 1 s, so responses up to 1 s keep the rate


def rate_users(rate: float, pacing_s: float = RATE_PACING_S) -> int:
    """The users needed for `rate` requests/s when each user sends one request per `pacing_s` seconds."""
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")
    return max(1, math.ceil(rate * pacing_s))


def per_user_throughput(rate: float, users: int) -> float:
    """Iterations per second per user (constant_throughput's argument) so that `users` together send `rate`."""
    if users < 1:
        raise ValueError(f"users must be at least 1, not {users}")
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")
    return rate / users
