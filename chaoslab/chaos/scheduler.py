"""Plays a fault schedule (chaoslab.chaos.schedule) against a lab: every fault injected at its time and undone at
its end, several at once when their windows overlap, under the experiments' safeguard, and nothing left behind
however the run ends.

One thread per fault sleeps until the fault's time, injects it (chaoslab.chaos.injector), holds it and undoes it.
The calling (main) thread watches: every `Safeguard.every_s` it reads the safeguard service's error budget burn
rate from Prometheus, the quantity the experiments' chaosaddons safeguard checks (probes.error_budget_burn_ok);
above the limit, the run is stopped: every fault acting is undone at once and the rest never start.

Ctrl-C (SIGINT, which Python delivers to the main thread only) stops the run the same way. While the faults are
being undone a second Ctrl-C is ignored: an undo cut in half is exactly what leaves a lab broken. Afterwards the
lab is searched for anything left (chaoslab.lab.faults.leftovers: in-service faults, paused or stopped programs,
kernel faults); what is found is recorded (the run fails on it) and undone by faults.restore, the rollback of last
resort every experiment ends with.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.chaos import injector
from chaoslab.chaos.lab import STATE_KEY
from chaoslab.chaos.schedule import Planned
from chaoslab.clients.prometheus import Prometheus
from chaoslab.lab import faults, registry
from chaoslab.observability import slos

SCHEDULE, SAFEGUARD, INTERRUPT = "schedule", "safeguard", "interrupt"
JOIN_STEP_S = 0.25
PROMETHEUS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Safeguard:
    """Stop everything when `service` burns its availability error budget faster than `max_burn_rate` over
    `window` (1 = exactly on budget; 100 = 10% of requests failing for a 99.9% objective)."""

    service: str = "gateway"
    max_burn_rate: float = 250.0
    window: str = "10s"
    every_s: float = 2.0


@dataclass
class Executed:
    planned: Planned
    state: str = "scheduled"  # scheduled, injecting, acting, undoing, done, skipped
    inject_started: float | None = None
    inject_ended: float | None = None
    injected: Any = None
    inject_error: str = ""
    undo_started: float | None = None
    undo_ended: float | None = None
    undone: Any = None
    undo_error: str = ""
    undone_by: str = ""  # schedule, safeguard or interrupt

    @property
    def started(self) -> bool:
        return self.inject_started is not None

    @property
    def window(self) -> tuple[float, float] | None:
        """From the injection's start until its undoing started (an instant fault: until it took effect)."""
        if self.inject_started is None or self.inject_ended is None:
            return None
        if self.planned.instant:
            return self.inject_started, self.inject_ended
        return self.inject_started, self.undo_started or self.inject_ended

    def to_json(self) -> dict[str, Any]:
        return {"planned": self.planned.to_json(), "state": self.state, "inject_started": self.inject_started,
                "inject_ended": self.inject_ended, "injected": self.injected, "inject_error": self.inject_error,
                "undo_started": self.undo_started, "undo_ended": self.undo_ended, "undone": self.undone,
                "undo_error": self.undo_error, "undone_by": self.undone_by}


@dataclass
class Trip:
    at: float
    burn_rate: float
    limit: float
    service: str
    window: str


@dataclass
class Outcome:
    started: float
    executed: list[Executed]
    ended: float | None = None
    trip: Trip | None = None
    interrupted: bool = False
    max_burn_rate: float | None = None
    leftovers: dict[str, list[str]] = field(default_factory=dict)  # found after every undo (the run fails on it)
    restored: dict[str, Any] | None = None  # what the rollback of last resort then did
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "ended": self.ended, "interrupted": self.interrupted,
                "safeguard_trip": None if self.trip is None else vars(self.trip),
                "max_burn_rate": self.max_burn_rate, "leftovers": self.leftovers, "restored": self.restored,
                "notes": self.notes, "faults": [e.to_json() for e in self.executed]}


Tell = Callable[[str], None]


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """No KeyboardInterrupt inside the block (main thread only: elsewhere signals cannot be handled anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:299] + "…"


class _Player:
    def __init__(self, configuration: dict[str, Any], tell: Tell) -> None:
        self.configuration = configuration
        self.tell = tell
        self.abort = threading.Event()
        self.reason = SCHEDULE

    def stop(self, reason: str) -> None:
        if not self.abort.is_set():
            self.reason = reason
            self.abort.set()

    def play(self, ex: Executed, t0: float) -> None:
        p = ex.planned
        if self.abort.wait(max(0.0, t0 + p.at_s - time.time())):
            ex.state = "skipped"
            return
        ex.state, ex.inject_started = "injecting", time.time()
        try:
            ex.injected = injector.inject(p, self.configuration)
            ex.inject_ended = time.time()
            self.tell(f"{p.name}: {p.describe()} injected")
        except BaseException as exc:  # noqa: BLE001 - reported as this fault's failure; the undo still runs
            ex.inject_ended, ex.inject_error = time.time(), _short(exc)
            self.tell(f"{p.name}: injecting failed: {ex.inject_error}")
        ex.state = "acting"
        if not self.abort.wait(max(0.0, t0 + p.end_s - time.time())):
            ex.undone_by = SCHEDULE
        else:
            ex.undone_by = self.reason
        if ex.inject_error and p.instant:
            ex.state = "done"  # nothing was killed: nothing to see running again
            return
        ex.state, ex.undo_started = "undoing", time.time()
        try:
            ex.undone = injector.undo(p, ex.injected, self.configuration)
            self.tell(f"{p.name}: undone ({ex.undone_by})")
        except BaseException as exc:  # noqa: BLE001 - a failed undo fails the run; the sweep below still runs
            ex.undo_error = _short(exc)
            self.tell(f"{p.name}: undoing failed: {ex.undo_error}")
        ex.undo_ended, ex.state = time.time(), "done"


def _burn_rate(prometheus: str, guard: Safeguard) -> float:
    value = Prometheus(prometheus, timeout_s=PROMETHEUS_TIMEOUT_S).scalar(
        slos.slo(guard.service, "availability").burn_rate(guard.window), empty=0.0)
    return round(float(value or 0.0), 3)


def play(schedule: Sequence[Planned], state_dir: Path, safeguard: Safeguard | None = None,
         tell: Tell | None = None) -> Outcome:
    """Play the schedule from now; returns when every fault is done (or skipped) and the lab was swept. A Ctrl-C
    does not raise here: the outcome says `interrupted` (the caller decides what an interruption means)."""
    reg = registry.find(state_dir)
    configuration = {STATE_KEY: str(state_dir), "prometheus_base_url": reg["prometheus_url"]}
    player = _Player(configuration, tell or (lambda _: None))
    outcome = Outcome(time.time(), [Executed(p) for p in sorted(schedule, key=lambda p: (p.at_s, p.name))])
    threads = [threading.Thread(target=player.play, args=(ex, outcome.started), name=ex.planned.name, daemon=True)
               for ex in outcome.executed]
    for thread in threads:
        thread.start()
    try:
        _watch(threads, player, outcome, reg["prometheus_url"], safeguard)
    except KeyboardInterrupt:
        outcome.interrupted = True
        player.stop(INTERRUPT)
        player.tell("interrupted: undoing every fault (a second Ctrl-C is ignored until that is done)")
    with sigint_ignored():
        for thread in threads:
            thread.join()
        _sweep(state_dir, outcome)
    outcome.ended = time.time()
    return outcome


def _watch(threads: list[threading.Thread], player: _Player, outcome: Outcome, prometheus: str,
           guard: Safeguard | None) -> None:
    next_check = time.time()
    while any(t.is_alive() for t in threads):
        if guard is not None and not player.abort.is_set() and time.time() >= next_check:
            next_check = time.time() + guard.every_s
            try:
                burn = _burn_rate(prometheus, guard)
            except Exception as exc:  # noqa: BLE001 - an unreadable burn rate is noted, not taken as a trip
                outcome.notes.append(f"safeguard: burn rate not read at {time.time():.0f}: {_short(exc)}")
                continue
            outcome.max_burn_rate = max(burn, outcome.max_burn_rate or 0.0)
            if burn > guard.max_burn_rate:
                outcome.trip = Trip(time.time(), burn, guard.max_burn_rate, guard.service, guard.window)
                player.stop(SAFEGUARD)
                player.tell(f"safeguard: {guard.service} burns its error budget at {burn:g}x (limit "
                            f"{guard.max_burn_rate:g}x over {guard.window}): undoing every fault")
        for thread in threads:
            thread.join(JOIN_STEP_S / max(1, len(threads)))


def _sweep(state_dir: Path, outcome: Outcome) -> None:
    """Whatever the undos missed is recorded, then undone."""
    try:
        reg = registry.find(state_dir)
        sv = faults.supervisor_of(state_dir)
        outcome.leftovers = faults.leftovers(reg, sv)
        if outcome.leftovers:
            outcome.restored = faults.restore(reg, sv)
    except Exception as exc:  # noqa: BLE001 - the outcome says the sweep failed; the run fails on it
        outcome.leftovers = {**outcome.leftovers, "sweep failed": [_short(exc)]}
