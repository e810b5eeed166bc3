"""Thresholds of a load run and their evaluation against a run summary (see summary.py for its shape).

A scenario declares a maximum error ratio, a minimum throughput and p95/p99 limits per request name. Latency
selectors are "*" (every request name), a name ("/api/orders", any method), a method and name
("POST /api/orders"), or "Aggregated" (all requests together, Locust's name for the total row). For each
request and each percentile the most specific selector that sets a limit wins, so a scenario can say
"p95 <= 500 ms everywhere, but 1500 ms for the sign-up" without repeating itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

ALL = "*"
AGGREGATED = "Aggregated"
PERCENTILES = ("p95", "p99")
# A percentile over very few samples is its maximum: one slow sign-up would fail a short run. Entries with fewer
# requests are reported as skipped rather than silently passed.
DEFAULT_MIN_SAMPLES = 5


@dataclass(frozen=True)
class LatencyLimit:
    selector: str
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float
    min_rps: float
    latency: tuple[LatencyLimit, ...] = ()
    min_samples: int = DEFAULT_MIN_SAMPLES

    def to_json(self) -> dict[str, Any]:
        return {
            "max_error_ratio": self.max_error_ratio,
            "min_rps": self.min_rps,
            "latency": [{"selector": x.selector, "p95_ms": x.p95_ms, "p99_ms": x.p99_ms} for x in self.latency],
            "min_samples": self.min_samples,
        }


@dataclass(frozen=True)
class Check:
    what: str  # "error ratio", "throughput", "p95 POST /api/orders"
    limit: str  # "<= 1.0%"
    observed: str
    ok: bool
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "limit": self.limit, "observed": self.observed, "ok": self.ok,
                "skipped": self.skipped}


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _specificity(selector: str, method: str, name: str) -> int | None:
    """How specifically `selector` names the request (higher wins), None when it does not match."""
    if selector == f"{method} {name}":
        return 3
    if selector == name:
        return 2
    if selector == ALL and name != AGGREGATED:
        return 1
    return None


def limit_for(limits: tuple[LatencyLimit, ...], method: str, name: str, percentile: str) -> float | None:
    """The limit of one percentile ("p95", "p99") for a request: the most specific selector that sets one."""
    best: tuple[int, float] | None = None
    for limit in limits:
        value = getattr(limit, f"{percentile}_ms")
        rank = _specificity(limit.selector, method, name)
        if value is None or rank is None:
            continue
        if best is None or rank > best[0]:
            best = (rank, float(value))
    return best[1] if best else None


def evaluate(thresholds: Thresholds, summary: dict[str, Any]) -> Verdict:
    """Check a summary ({"total": {...}, "entries": [...]}, see summary.py) against the thresholds."""
    verdict = Verdict()
    total = summary["total"]
    requests, failures = int(total["requests"]), int(total["failures"])
    ratio = failures / requests if requests else 0.0
    verdict.checks.append(Check(
        "error ratio", f"<= {thresholds.max_error_ratio:.2%}", f"{ratio:.2%} ({failures}/{requests})",
        ratio <= thresholds.max_error_ratio,
    ))
    rps = float(total["rps"])
    verdict.checks.append(Check(
        "throughput", f">= {thresholds.min_rps:g} req/s", f"{rps:.2f} req/s",
        rps >= thresholds.min_rps and requests > 0,
    ))
    rows = [*summary["entries"], {**total, "method": "", "name": AGGREGATED}]
    for row in rows:
        method, name = str(row.get("method") or ""), str(row["name"])
        label = f"{method} {name}".strip()
        for percentile in PERCENTILES:
            limit = limit_for(thresholds.latency, method, name, percentile)
            if limit is None:
                continue
            count = int(row["requests"])
            if count < thresholds.min_samples:
                verdict.checks.append(Check(f"{percentile} {label}", f"<= {limit:g} ms",
                                            f"skipped: {count} samples", True, skipped=True))
                continue
            observed = float(row[f"{percentile}_ms"])
            verdict.checks.append(Check(f"{percentile} {label}", f"<= {limit:g} ms", f"{observed:g} ms",
                                        observed <= limit))
    return verdict


# --- overrides from the command line ---------------------------------------------------------------------------

_OVERRIDE = re.compile(r"^\s*(?P<key>[a-z0-9_]+)\s*(?::\s*(?P<selector>[^=]+?))?\s*=\s*(?P<value>[^=]+?)\s*$")
OVERRIDE_HELP = (
    "KEY[:SELECTOR]=VALUE with KEY one of error_ratio (0..1), min_rps, p95, p99 (ms); SELECTOR for p95/p99: "
    "a request name (/api/orders), METHOD NAME (POST /api/orders), Aggregated, or * (default)"
)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if value < 0 or value != value:  # negative or NaN
        raise ValueError(f"{what}: {text!r} must be a non-negative number")
    return value


def apply_overrides(thresholds: Thresholds, overrides: list[str]) -> Thresholds:
    """`thresholds` changed by overrides like "p95=300", "p99:POST /api/orders=800", "error_ratio=0.05".

    A latency override replaces that percentile of the selector's limit and keeps the other one.
    Raises ValueError with a message fit for a person.
    """
    for text in overrides:
        match = _OVERRIDE.match(text)
        if not match:
            raise ValueError(f"bad threshold {text!r}: expected {OVERRIDE_HELP}")
        key, selector, raw = match["key"], match["selector"], match["value"]
        if key in ("error_ratio", "min_rps") and selector:
            raise ValueError(f"bad threshold {text!r}: {key} applies to the whole run, not to {selector!r}")
        if key == "error_ratio":
            value = _number(raw, text)
            if value > 1:
                raise ValueError(f"bad threshold {text!r}: an error ratio is between 0 and 1")
            thresholds = replace(thresholds, max_error_ratio=value)
        elif key == "min_rps":
            thresholds = replace(thresholds, min_rps=_number(raw, text))
        elif key in PERCENTILES:
            thresholds = _set_latency(thresholds, (selector or ALL).strip(), key, _number(raw, text))
        else:
            raise ValueError(f"bad threshold {text!r}: unknown key {key!r}; expected {OVERRIDE_HELP}")
    return thresholds


def _set_latency(thresholds: Thresholds, selector: str, percentile: str, value: float) -> Thresholds:
    limits = list(thresholds.latency)
    for i, limit in enumerate(limits):
        if limit.selector == selector:
            limits[i] = replace(limit, **{f"{percentile}_ms": value})
            break
    else:
        limits.append(LatencyLimit(selector, **{f"{percentile}_ms": value}))
    return replace(thresholds, latency=tuple(limits))
