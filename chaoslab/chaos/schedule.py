"""Faults on a clock: which fault of the catalogue, where, when and for how long; how a seeded random schedule is
drawn (`chaoslab chaos random`); and the checks every schedule passes, a plan's overlapping faults included.

The catalogue of fault kinds is chaoslab.chaos.template.FAULTS (what `chaoslab chaos new` writes experiments
from); chaoslab.chaos.injector turns a scheduled fault into the extension's actions.

Reproducible: a random schedule depends on nothing but its inputs (the seed, the options and the lab's topology:
services and replica counts), drawn with one random.Random(seed) in a fixed order, so the same seed on the same
lab gives the same faults, targets, replicas and times, on any machine and Python 3 version. Nothing is drawn
while the schedule runs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chaoslab.chaos.template import COMMON_SETTINGS, FAULTS

BROKER = "broker"
# What a random schedule picks from on a loopback lab: every in-service and process fault. The faults below the
# application (FAULTS[...].isolated) need an isolated lab and are only drawn when named (--faults).
DEFAULT_KINDS = tuple(k for k, f in FAULTS.items() if not f.isolated)
# Faults that take one replica (a number); the others act on every replica of their service ("all").
ONE_REPLICA = ("kill", "pause", "memory")
# After a fault ends, its target gets this long to recover before a random schedule hits it again (a restarted
# replica is ready in ~2 s, a stopped service in ~10 s): two faults in a row on one target would read as one.
DEFAULT_RECOVERY_S = 10.0
# The gateway is left out of random targets unless named: a fault on it is a total outage, and the safeguard reads
# the gateway's own error budget, which a stopped gateway no longer reports.
DEFAULT_EXCLUDED = ("gateway",)


@dataclass(frozen=True)
class Planned:
    """One fault of a schedule."""

    name: str  # F01-stop-payments: unique in its schedule
    kind: str  # a key of FAULTS
    target: str  # a service, or "broker"
    at_s: float  # from the schedule's start
    duration_s: float  # how long it acts before it is undone (an instant fault: how long it is watched)
    replica: int | str = "all"  # a replica number (ONE_REPLICA kinds), else "all"
    params: dict[str, Any] = field(default_factory=dict)  # the kind's settings (latency_ms, error_percent, ...)

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    @property
    def instant(self) -> bool:
        """A fault nothing undoes (a SIGKILL): its window ends when it took effect."""
        return FAULTS[self.kind].undo is None

    def describe(self) -> str:
        where = self.target if self.replica == "all" else f"{self.target}-{self.replica}"
        extra = "".join(f" {k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind} {where}{extra}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def settings_of(kind: str) -> dict[str, Any]:
    """The settings a kind's arguments use, with their defaults (besides fault_ttl_s, which the schedule sets)."""
    spec = FAULTS[kind]
    keys = {v[2:-1] for v in _placeholders(spec.arguments)} - {"fault_ttl_s"}
    merged = {**COMMON_SETTINGS, **spec.settings}
    return {k: merged[k] for k in sorted(keys)}


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("${") and value.endswith("}") else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _placeholders(v)]
    return []


def topology(registry: Mapping[str, Any]) -> dict[str, int]:
    """Replicas per service of a lab (its registry), the one input of a schedule besides its options."""
    return {name: len(svc.get("replicas") or []) for name, svc in registry["services"].items()}


def targets_for(kind: str, services: Mapping[str, int], allowed: Sequence[str] | None) -> list[str]:
    if not FAULTS[kind].service_target:
        return [BROKER] if allowed is None or BROKER in allowed else []
    names = [s for s, n in services.items() if n > 0]
    chosen = [s for s in names if s in allowed] if allowed is not None else \
        [s for s in names if s not in DEFAULT_EXCLUDED]
    return sorted(chosen)


def problems(schedule: Sequence[Planned], services: Mapping[str, int] | None = None,
             isolated: bool | None = None) -> list[str]:
    """What would make a schedule fail or mislead: an unknown kind or target, a replica the lab does not have, a
    setting the kind does not take, a fault below the application on a loopback lab, and two faults on one target
    at once (undoing one would undo the other: clear_faults and start_service act on the whole service)."""
    out = []
    names = [p.name for p in schedule]
    for twice in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"{twice}: two faults with this name")
    for p in schedule:
        if p.kind not in FAULTS:
            out.append(f"{p.name}: unknown fault kind {p.kind!r} (kinds: {', '.join(FAULTS)})")
            continue
        spec = FAULTS[p.kind]
        if p.at_s < 0 or p.duration_s <= 0:
            out.append(f"{p.name}: at_s must be >= 0 and duration_s > 0")
        if spec.service_target:
            if services is not None and p.target not in services:
                out.append(f"{p.name}: no service {p.target!r} (services: {', '.join(services)})")
            elif services is not None and isinstance(p.replica, int) and not 1 <= p.replica <= services[p.target]:
                out.append(f"{p.name}: {p.target} has {services[p.target]} replica(s), not a replica {p.replica}")
        elif p.target != BROKER:
            out.append(f"{p.name}: a {p.kind} fault's target is {BROKER!r}, not {p.target!r}")
        if p.replica != "all" and p.kind not in ONE_REPLICA:
            out.append(f"{p.name}: a {p.kind} fault acts on every replica; replica must be 'all'")
        unknown = sorted(set(p.params) - set(settings_of(p.kind)))
        if unknown:
            takes = ", ".join(settings_of(p.kind)) or "no setting"
            out.append(f"{p.name}: {p.kind} takes {takes}, not {', '.join(unknown)}")
        if spec.isolated and isolated is False:
            out.append(f"{p.name}: {p.kind} acts below the application and needs an isolated lab "
                       "(chaoslab up --network isolated)")
    for i, a in enumerate(schedule):
        for b in schedule[i + 1:]:
            if a.target == b.target and a.at_s < b.end_s and b.at_s < a.end_s:
                out.append(f"{a.name} and {b.name} hit {a.target} at the same time: undoing one would undo the "
                           "other; give them different targets or times")
    return out


@dataclass(frozen=True)
class RandomOptions:
    duration_s: float
    seed: int
    kinds: tuple[str, ...] = DEFAULT_KINDS
    targets: tuple[str, ...] | None = None  # None: every service but the gateway, and the broker
    max_concurrent: int = 2
    fault_s: tuple[float, float] = (10.0, 60.0)  # each fault's duration, drawn uniformly
    gap_s: tuple[float, float] = (15.0, 60.0)  # between two fault starts, drawn uniformly
    recovery_s: float = DEFAULT_RECOVERY_S


def option_problems(opts: RandomOptions, services: Mapping[str, int]) -> list[str]:
    out = []
    unknown = [k for k in opts.kinds if k not in FAULTS]
    if unknown:
        out.append(f"unknown fault kind(s) {', '.join(unknown)} (kinds: {', '.join(FAULTS)})")
    if opts.targets is not None:
        bad = [t for t in opts.targets if t not in services and t != BROKER]
        if bad:
            out.append(f"unknown target(s) {', '.join(bad)} (services of the lab: {', '.join(services)}, or broker)")
    if opts.duration_s <= 0:
        out.append("the duration must be positive")
    if opts.max_concurrent < 1:
        out.append("--max-concurrent must be at least 1")
    for what, (low, high) in (("fault duration", opts.fault_s), ("gap", opts.gap_s)):
        if not 0 < low <= high:
            out.append(f"the {what} range must be 0 < MIN <= MAX, not {low:g}-{high:g}")
    if not out and not any(targets_for(k, services, opts.targets) for k in opts.kinds):
        out.append("no fault kind has a target among the targets given")
    return out


def random_schedule(opts: RandomOptions, services: Mapping[str, int]) -> list[Planned]:
    """Draw a schedule: fault starts spaced by a random gap, each a random kind on a random target free at that
    time, for a random duration, while at most `max_concurrent` act at once. A draw that does not fit (its target
    busy, too many faults acting) is skipped, not redrawn: the sequence of draws stays the same."""
    rng = random.Random(opts.seed)
    kinds = sorted(set(opts.kinds))  # the order the user gave them in must not change the schedule
    chosen: list[Planned] = []
    t = rng.uniform(0.0, opts.gap_s[0])  # a little steady load first, for the first window's "before"
    while True:
        kind = rng.choice(kinds)
        duration = round(rng.uniform(*opts.fault_s), 1)
        pick = rng.random()  # drawn whether used or not: one fit more or less must not shift later draws
        replica_pick = rng.random()
        start = round(t, 1)
        if start + min(duration, opts.fault_s[0]) > opts.duration_s:
            break
        duration = min(duration, round(opts.duration_s - start, 1))
        end = start + duration
        busy = {p.target for p in chosen if p.at_s < end + opts.recovery_s and start < p.end_s + opts.recovery_s}
        acting = sum(1 for p in chosen if p.at_s < end and start < p.end_s)  # overlapping it, at most all at once
        free = [x for x in targets_for(kind, services, opts.targets) if x not in busy]
        if free and acting < opts.max_concurrent:
            target = free[int(pick * len(free))]
            replica: int | str = "all"
            if kind in ONE_REPLICA:
                replica = 1 + int(replica_pick * services[target])
            name = f"F{len(chosen) + 1:02d}-{kind}-{target}"
            chosen.append(Planned(name, kind, target, start, duration, replica))
        t += rng.uniform(*opts.gap_s)
    return chosen
