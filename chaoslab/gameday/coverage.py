"""Detection coverage: every fault class of the catalogue against every service it applies to, under a light load,
and which alerts each set off. The fault x alert matrix answers the questions a gameday cannot: which faults does
the alerting not see at all (blind spots: clients saw the fault, no alert fired, or a fault that must be detected
was not), and which alerts never fire for anything (dead alerts).

Each cell is a real `chaos run` of the experiment `chaoslab chaos new` would write for that fault and target
(chaoslab/chaos/template.py), with the fault held for `fault_s` seconds; the lab is quiet again (no alert firing)
before the next one, so that an alert is attributed to the fault that raised it: alerts already firing when a fault
goes in are not its own.

The catalogue (chaoslab/chaos/template.py's FAULTS) marks the faults an alert must cover (`must_detect`): a whole
service stopped pages ServiceDown, the broker stopped pages BrokerDown, a service answering half its requests with
errors burns its availability budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaoslab.chaos import template
from chaoslab.clients.prometheus import Prometheus
from chaoslab.gameday import measure
from chaoslab.gameday.alerts import identity
from chaoslab.gameday.journal import fault_window
from chaoslab.lab import faults, registry, webhook
from chaoslab.lab.paths import new_run_dir
from chaoslab.observability.alerts import alert_names

IN_SERVICE = ("kill", "stop", "pause", "latency", "errors", "cpu", "broker")
DEGRADED_ERROR_RATIO = 0.01  # clients saw the fault: more failures than this share...
DEGRADED_P99_FACTOR = 3.0  # ... or a p99 this many times the baseline's (and at least DEGRADED_P99_MIN_S)
DEGRADED_P99_MIN_S = 1.0
QUIET_TIMEOUT_S = 60.0  # tickets of slow burns may fire for minutes: only pages are waited out
SETTLE_S = 20.0  # after the fault, for alerts with a `for:` to fire
POLL_S = 2.0


@dataclass
class Cell:
    fault: str
    target: str  # a service, or "broker"
    started: float = 0.0
    injected: float | None = None
    ended: float | None = None
    alerts: list[str] = field(default_factory=list)  # alert instances that fired for it, "Name (about)"
    client: dict[str, Any] | None = None
    degraded: bool = False
    must_detect: str | None = None
    detected: bool | None = None  # None: nothing had to be detected
    run_dir: str = ""
    error: str = ""

    @property
    def blind(self) -> bool:
        """A blind spot: a fault that had to be detected and was not, or one clients saw that no alert saw."""
        return bool(self.detected is False or (self.degraded and not self.alerts))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "blind": self.blind}


@dataclass
class Coverage:
    cells: list[Cell]
    catalogue: list[str]  # every alert name
    baseline: dict[str, Any] | None

    @property
    def blind_spots(self) -> list[Cell]:
        return [c for c in self.cells if c.blind]

    @property
    def dead_alerts(self) -> list[str]:
        fired = {a.split(" (")[0] for c in self.cells for a in c.alerts}
        return [name for name in self.catalogue if name not in fired]

    @property
    def passed(self) -> bool:
        return not any(c.detected is False for c in self.cells) and not any(c.error for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "cells": [c.to_json() for c in self.cells], "catalogue": self.catalogue,
                "blind_spots": [f"{c.fault} {c.target}" for c in self.blind_spots], "dead_alerts": self.dead_alerts,
                "baseline": self.baseline}


def plan_cells(fault_kinds: list[str] | None, services: list[str] | None, isolated: bool) -> list[Cell]:
    """The matrix's rows: every fault kind (in-service ones, and below the application in an isolated lab) against
    every service it applies to. ValueError for an unknown fault kind or service."""
    cells = []
    for kind, target in template.fault_targets(fault_kinds, services, isolated):
        must = template.FAULTS[kind].must_detect
        cells.append(Cell(kind, target, must_detect=must, detected=False if must else None))
    return cells


def _firing_now(prometheus: Prometheus, severity: str | None = None) -> set[str]:
    return {identity(a["labels"].get("alertname", "?"), a["labels"]) for a in prometheus.alerts()
            if a.get("state") == "firing" and severity in (None, a["labels"].get("severity"))}


def wait_quiet(prometheus: Prometheus, timeout_s: float = QUIET_TIMEOUT_S,
               sleep: Callable[[float], None] = time.sleep) -> set[str]:
    """Wait until no page fires (at most timeout_s); every alert still firing then, which the next fault is not
    credited with."""
    deadline = time.monotonic() + timeout_s
    while _firing_now(prometheus, "page") and time.monotonic() < deadline:
        sleep(POLL_S)
    return _firing_now(prometheus)


def run_cell(cell: Cell, state_dir: Path, runs_dir: Path, fault_s: float, baseline_p99: float | None,
             folder: Path) -> None:
    """One fault against one target, judged: the alerts it set off, what clients saw, whether it was detected."""
    from chaoslab.chaos.runner import RunOptions
    from chaoslab.chaos.runner import run as chaos_run

    reg = registry.find(state_dir)
    prometheus = Prometheus(reg["prometheus_url"], timeout_s=measure.PROMETHEUS_TIMEOUT_S)
    already = wait_quiet(prometheus)
    name = f"coverage-{cell.fault}-{cell.target}"
    data = template.experiment(name, cell.fault, cell.target if cell.target != "broker" else "payments")
    data["configuration"]["fault_s"] = fault_s
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cell.started = time.time()
    try:
        result = chaos_run(RunOptions(path, state_dir, runs_dir, load=None, warmup_s=0.0))
        cell.run_dir = str(result.run_dir)
        window = fault_window(measure_journal(result.run_dir))
        cell.injected = window.start if window else cell.started
        cell.ended = time.time()
        settle_until = cell.ended + SETTLE_S
        seen: list[webhook.AlertEvent] = []
        while time.time() < settle_until:
            seen = webhook.events(webhook.notifications(reg["webhook_url"], cell.injected))
            if cell.must_detect and any(e.matches(cell.must_detect) and e.status == "firing" for e in seen):
                break
            time.sleep(POLL_S)
        cell.alerts = sorted({identity(e.name, e.labels) for e in seen if e.status == "firing"} - already)
        view = measure.client_view(reg["prometheus_url"], cell.injected, cell.ended)
        cell.client = asdict(view)
        slow = view.p99_s is not None and view.p99_s > max(DEGRADED_P99_MIN_S,
                                                            DEGRADED_P99_FACTOR * (baseline_p99 or 0.0))
        cell.degraded = bool((view.error_ratio or 0.0) > DEGRADED_ERROR_RATIO or slow)
        if cell.must_detect:
            about = "rabbitmq" if cell.target == "broker" else cell.target
            cell.detected = any(a.startswith(f"{cell.must_detect} (") and about in a for a in cell.alerts)
    except Exception as exc:  # noqa: BLE001 - one cell failing is a result of its own; the matrix goes on
        cell.error = f"{exc.__class__.__name__}: {exc}"
        faults.restore(reg, faults.supervisor_of(state_dir))


def measure_journal(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads((run_dir / "journal.json").read_text()))
    except (OSError, ValueError):
        return {}


def run(state_dir: Path, runs_dir: Path, cells: list[Cell], fault_s: float = 20.0, load_rate: float = 5.0,
        on_cell: Callable[[int, Cell], None] | None = None) -> tuple[Coverage, Path]:
    """Every cell in turn under a light Locust load; the matrix, and the run directory it was written to."""
    from chaoslab.load.background import BackgroundLoad

    run_dir = new_run_dir(runs_dir, "coverage", f"{len(cells)}-faults")
    folder = run_dir / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    reg = registry.find(state_dir)
    load = BackgroundLoad("rate", state_dir, run_dir, rate=load_rate, reports=run_dir / "load")
    load.start()
    baseline = None
    try:
        time.sleep(20.0)  # users sign up; a baseline for "clients saw it"
        baseline = asdict(measure.client_view(reg["prometheus_url"], time.time() - 15.0, time.time()))
        for index, cell in enumerate(cells):
            run_cell(cell, state_dir, runs_dir, fault_s, baseline.get("p99_s"), folder)
            if on_cell is not None:
                on_cell(index, cell)
    finally:
        load.stop()
    return Coverage(cells, alert_names(), baseline), run_dir


def render(coverage: Coverage) -> str:
    from jinja2 import Environment

    from chaoslab.gameday.template import COVERAGE_PAGE

    env = Environment(autoescape=True)
    env.tests["match"] = lambda value, prefix: str(value).startswith(prefix)
    data = coverage.to_json()
    return env.from_string(COVERAGE_PAGE).render(**data)
