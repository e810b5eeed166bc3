"""The native experiments under chaos/: finding them, describing them, and checking them beyond `chaos validate`
(a hypothesis, a method and rollbacks; no hard-coded address; only functions the extension exports)."""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslab import documents
from chaoslab.errors import DocumentError
from chaoslab.lab.paths import repo_root

EXTENSION_MODULES = ("chaoslab.chaos.actions", "chaoslab.chaos.probes")
# A pause is one time.sleep that a safeguard's interruption does not always cut short: hold() is (actions.py).
MAX_PAUSE_S = 2.0
# An address written into an experiment would tie it to one lab: they come from the registry instead.
HARD_CODED_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost|0\.0\.0\.0):\d+")


def experiments_dir() -> Path:
    return repo_root() / "chaos"


def all_experiments() -> list[Path]:
    """Native experiments only: chaos/*.json, *.yaml, *.yml (chaos/k8s/ belongs to the Kubernetes mode)."""
    return sorted(p for p in experiments_dir().iterdir() if p.is_file() and p.suffix in documents.SUFFIXES)


def resolve(name: str, base: Path | None = None) -> Path:
    """An experiment by path (relative to `base`, a plan's folder, else to the current directory), or by name
    under chaos/ (with or without its suffix). FileNotFoundError saying where it looked."""
    path = (base / name) if base is not None else Path(name)
    if path.is_file():
        return path.resolve()
    if Path(name).suffix in documents.SUFFIXES:
        candidates = [experiments_dir() / name]
    else:
        candidates = [experiments_dir() / f"{name}{suffix}" for suffix in documents.SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = ", ".join(p.stem for p in all_experiments())
    where = f"no file {path}" if base is not None or "/" in name or Path(name).suffix else "no such file"
    raise FileNotFoundError(f"no experiment {name!r}: {where}, and none of that name in chaos/ (known: {known})")


@dataclass
class Summary:
    name: str
    title: str
    description: str
    tags: list[str]


def describe(path: Path) -> Summary:
    data = documents.load_mapping(path, "an experiment")
    return Summary(path.stem, str(data.get("title", "")), str(data.get("description", "")),
                   list(data.get("tags", [])))


def _activities(data: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = data.get("steady-state-hypothesis") or {}
    found = list(hypothesis.get("probes", [])) + list(data.get("method", [])) + list(data.get("rollbacks", []))
    for control in data.get("controls", []):
        found.extend(control.get("provider", {}).get("arguments", {}).get("probes", []))
    return [a for a in found if isinstance(a, dict) and a.get("type") in ("action", "probe")]


def lint(path: Path) -> list[str]:
    """Problems `chaos validate` does not look for; empty when the experiment is fine."""
    text = path.read_text()
    try:
        data = documents.load_mapping(path, "an experiment")
    except DocumentError as exc:
        return [exc.message]
    problems = []
    if not (data.get("steady-state-hypothesis") or {}).get("probes"):
        problems.append("no steady-state hypothesis probes")
    if not data.get("method"):
        problems.append("no method")
    if not data.get("rollbacks"):
        problems.append("no rollbacks: a fault must always be undone")
    if "chaoslab_state_dir" not in (data.get("configuration") or {}):
        problems.append("no configuration key chaoslab_state_dir")
    for match in HARD_CODED_ADDRESS.finditer(text):
        problems.append(f"hard-coded address {match.group(0)}: take it from the lab registry")
    exported = {m: set(importlib.import_module(m).__all__) for m in EXTENSION_MODULES}
    for activity in _activities(data):
        for when, value in (activity.get("pauses") or {}).items():
            if not isinstance(value, int | float) or value > MAX_PAUSE_S:
                problems.append(f"{activity.get('name')}: a pause {when} of {value} s; hold with "
                                f"chaoslab.chaos.actions.hold so that a safeguard can interrupt it")
        provider = activity.get("provider", {})
        module = provider.get("module")
        if module in exported and provider.get("func") not in exported[module]:
            problems.append(f"{activity.get('name')}: {module}.{provider.get('func')} is not exported")
    return problems


def unknown_variables(data: dict[str, Any], variables: dict[str, Any]) -> dict[str, str]:
    """For each of `variables` (--var, a plan's vars) that the experiment's configuration does not have, what is
    wrong with it: a typo would be ignored by chaos run, and the default would silently apply."""
    known = set(data.get("configuration") or {})
    problems = {}
    for key in variables:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            problems[key] = ("the experiment has no such configuration key"
                             + (f" (did you mean {close[0]}?)" if close else "")
                             + f"; it has: {', '.join(sorted(known))}")
    return problems
