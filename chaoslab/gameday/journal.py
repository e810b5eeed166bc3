"""What a gameday reads from a Chaos Toolkit journal beyond the chaos verdict: when the fault went in and when it
was undone (the clocks time-to-detect and time-to-recover start from), and each method activity's times for the
timeline. Journal timestamps are ISO 8601 with an offset; everything here is unix time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Activity:
    name: str
    kind: str  # "action" or "probe"
    status: str
    start: float
    end: float


@dataclass(frozen=True)
class FaultWindow:
    start: float  # the injecting activity started: the outage can begin from then on
    end: float  # the undoing activity started: recovery is timed from there (an instant fault, such as a
    # SIGKILL, that nothing undoes: the injection's end)
    injected_by: str
    undone_by: str


def unix(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def activities(journal: dict[str, Any], key: str = "run") -> list[Activity]:
    out = []
    for run in journal.get(key) or []:
        start, end = unix(run.get("start")), unix(run.get("end"))
        if start is None:
            continue
        activity = run.get("activity") or {}
        out.append(Activity(str(activity.get("name", "?")), str(activity.get("type", "?")),
                            str(run.get("status", "?")), start, end if end is not None else start))
    return out


def fault_window(journal: dict[str, Any], start_name: str | None = None,
                 end_name: str | None = None) -> FaultWindow | None:
    """The fault's window in the method: from `start_name` (default: the first action) to `end_name` (default:
    none, an instant fault). None when the injecting activity did not run (the method was skipped)."""
    method = activities(journal)
    starts = [a for a in method if (a.name == start_name if start_name else a.kind == "action")]
    if not starts:
        return None
    start = starts[0]
    ends = [a for a in method if end_name and a.name == end_name and a.start >= start.end]
    if not ends:
        return FaultWindow(start.start, start.end, start.name, start.name)
    # An action undoes the fault when it starts (start the service, clear the fault); a probe that waits for the
    # fault to go away (a TTL running out) has seen it gone when it ends.
    end = ends[0].start if ends[0].kind == "action" else ends[0].end
    return FaultWindow(start.start, end, start.name, ends[0].name)


def span(journal: dict[str, Any]) -> tuple[float | None, float | None]:
    return unix(journal.get("start")), unix(journal.get("end"))
