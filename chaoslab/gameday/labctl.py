"""The lab a gameday runs against: started when it is not running, scaled up to what the plan needs (and back
afterwards), cleared of anything a previous run left (faults, paused or stopped programs) before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.lab import control
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.ports import DEFAULT_BASE_PORT
from chaoslab.lab.spec import default_replicas, load_spec
from chaoslab.lab.supervisor import Supervisor


@dataclass
class LabSession:
    state_dir: Path
    registry: dict[str, Any]
    started: bool  # the gameday started it (else it was running already)
    scaled_from: dict[str, int] = field(default_factory=dict)  # replicas to go back to afterwards
    startup_s: float | None = None

    @property
    def config(self) -> dict[str, str]:
        """The configuration the chaos extension's activities take (they find the lab through it)."""
        return {"chaoslab_state_dir": str(self.state_dir)}

    def info(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "base_port": self.registry.get("base_port"),
                "started_by_gameday": self.started, "startup_s": self.startup_s,
                "scaled_for_the_plan": self.scaled_from,
                "replicas": {s: len(v.get("replicas", [])) for s, v in self.registry.get("services", {}).items()}}


def running(state_dir: Path) -> bool:
    paths = LabPaths.of(state_dir)
    return paths.lab_json.exists() and Supervisor(paths).is_running()


def ensure(state_dir: Path, base_port: int | None, wanted: dict[str, int],
           reporter: control.Reporter | None = None) -> LabSession:
    """A running, ready, fault-free lab with at least `wanted` replicas."""
    import time

    from chaoslab.chaos import actions

    paths = LabPaths.of(state_dir)
    if running(state_dir):
        status = control.status(state_dir)
        have = {s: len(v.get("replicas", [])) for s, v in status.registry["services"].items()}
        short = {s: n for s, n in wanted.items() if have.get(s, 0) < n}
        session = LabSession(paths.state, status.registry, started=False)
        if short:
            result = control.scale(state_dir, [f"{s}={n}" for s, n in short.items()], reporter=reporter)
            session.scaled_from = {s: have.get(s, 0) for s in short}
            session.registry = result.registry
        # whatever an interrupted run left behind: faults, paused replicas, stopped programs
        actions.restore_lab(configuration=session.config)
        return session
    started = time.monotonic()
    if paths.lab_json.exists():  # a lab that ran here before: same ports, overrides and databases
        spec = load_spec(state_dir)
        replicas = {s: max(n, wanted.get(s, 0)) for s, n in spec.replicas.items()}
        registry = control.up(state_dir, base_port or spec.base_port, replicas,
                              database_url_template=spec.database_url_template, env=spec.env, reporter=reporter)
    else:
        replicas = {**default_replicas(), **{s: max(n, 1) for s, n in wanted.items()}}
        registry = control.up(state_dir, base_port or DEFAULT_BASE_PORT, replicas, reporter=reporter)
    return LabSession(paths.state, registry, started=True, startup_s=round(time.monotonic() - started, 1))


def restore(session: LabSession, down: bool) -> list[str]:
    """Undo what the gameday changed: replicas it added; with `down`, a lab it started. What it did, in words."""
    done = []
    if session.scaled_from and not (down and session.started):
        try:
            control.scale(session.state_dir, [f"{s}={n}" for s, n in session.scaled_from.items()])
            done.append("scaled back to " + ", ".join(f"{s}={n}" for s, n in session.scaled_from.items()))
        except LabError as exc:
            done.append(f"could not scale back: {exc.message}")
    if down and session.started:
        control.down(session.state_dir)
        done.append("stopped the lab it started")
    return done
