"""Finding the lab an activity acts on: its state dir, then its registry (docs/design.md, "The lab registry").

The registry's addresses (ports, admin URLs, token) are fixed for a lab's life; process ids and states are not,
so anything about live processes asks supervisord (procs.py) or the replicas themselves, never the file.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

TARGET_KEY = "chaoslab_target"
STATE_KEY = "chaoslab_state_dir"
STATE_ENV = "CHAOSLAB_STATE_DIR"
DEFAULT_STATE_DIR = ".chaoslab"

Configuration = dict[str, Any] | None


class LabNotFound(ActivityFailed):
    """No registry in the state dir: the activity cannot know where anything is."""


def state_dir(configuration: Configuration = None) -> Path:
    """The configuration key wins over the environment, which wins over the default."""
    value = (configuration or {}).get(STATE_KEY) or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR
    return Path(str(value)).expanduser().resolve()


def target(configuration: Configuration = None) -> str:
    """"native" (a lab on this machine, the default) or "compose" (the runner inside a compose stack)."""
    from chaoslab.chaos.compose import TARGET_ENV

    value = str((configuration or {}).get(TARGET_KEY) or os.environ.get(TARGET_ENV) or "native")
    if value not in ("native", "compose"):
        raise ActivityFailed(f"unknown chaos target {value!r} ({TARGET_KEY} / ${TARGET_ENV}): native or compose")
    return value


def load_registry(configuration: Configuration = None) -> dict[str, Any]:
    if target(configuration) == "compose":
        from chaoslab.chaos.compose import compose_registry

        return compose_registry()
    state = state_dir(configuration)
    path = state / "registry.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return _registry_from_spec(state)
    except (OSError, json.JSONDecodeError) as exc:
        raise LabNotFound(f"cannot read the lab registry {path}: {exc}") from None


def _registry_from_spec(state: Path) -> dict[str, Any]:
    # `chaoslab up` writes registry.json; a lab started by an older CLI may only have lab.json.
    from chaoslab.errors import LabError
    from chaoslab.lab.registry import build_registry
    from chaoslab.lab.spec import load_spec

    try:
        spec = load_spec(state)
    except LabError:
        raise LabNotFound(f"no lab in {state} (no registry.json): start one with `chaoslab up --state-dir "
                          f"{state}`, or set {STATE_KEY} / ${STATE_ENV}") from None
    return build_registry(spec, [], probe=False)


def admin_token(reg: dict[str, Any]) -> str:
    return str(reg["admin_token"])


def service_names(reg: dict[str, Any]) -> list[str]:
    return list(reg["services"])


def replicas(reg: dict[str, Any], service: str) -> list[dict[str, Any]]:
    try:
        return list(reg["services"][service]["replicas"])
    except KeyError:
        raise ActivityFailed(f"no service {service!r} in the lab (services: {', '.join(reg['services'])})") from None


def select_replicas(reg: dict[str, Any], service: str, replica: str | int | None = "all",
                    rng: random.Random | None = None) -> list[dict[str, Any]]:
    """The replicas an activity targets.

    `replica` is "all" (every replica), None or "random" (one, at random), a number (1-based: 2 is
    `<service>-2`) or a replica name. Experiments say "one replica" without knowing how many there are.
    """
    found = replicas(reg, service)
    if not found:
        raise ActivityFailed(f"{service} has no replicas in this lab")
    if replica == "all":
        return found
    if replica is None or replica == "random":
        return [(rng or random).choice(found)]
    wanted = f"{service}-{replica}" if isinstance(replica, int) or str(replica).isdigit() else str(replica)
    for item in found:
        if item["name"] == wanted:
            return [item]
    raise ActivityFailed(f"no replica {wanted!r} of {service} (replicas: {', '.join(r['name'] for r in found)})")


def service_of(replica_name: str) -> str:
    """`payments-2` -> `payments`."""
    return replica_name.rsplit("-", 1)[0]
