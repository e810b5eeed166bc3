"""Rule profiles: the same alerts over the SRE workbook's windows (standard) or scaled down (native).

Every window and `for:` duration in the catalogue is written once, in standard (production) terms.
A profile maps it to what its Prometheus evaluates. The native lab scrapes every 2 s and a chaos run
lasts minutes, so the native profile divides every duration by SCALE and never lets a range window drop
below MIN_RANGE_SCRAPES scrape intervals (rate() over fewer samples is noise, or empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# 5m / 30 = 10s = 5 scrapes of 2 s: the shortest burn-rate window still holds >= 4 scrapes (see alerts/README.md).
NATIVE_SCALE = 30
MIN_RANGE_SCRAPES = 4


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration such as `5m`, `2h24m` or `3d` (whole units only)."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(v) * _UNITS[u] for v, u in zip(match.groups(), "dhms", strict=True) if v)


def format_duration(seconds: int) -> str:
    """The shortest Prometheus duration for `seconds` (e.g. 8640 -> `2h24m`, 0 -> `0s`)."""
    if seconds < 0:
        raise ValueError("negative duration")
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class Profile:
    """How durations written in standard terms become the durations one Prometheus evaluates."""

    name: str
    scale: int  # standard duration / scale = this profile's duration
    scrape_interval_s: int  # the scrape interval this profile is designed for (documented, not enforced)
    evaluation_interval: str | None  # rule group `interval:`; None keeps the server's global setting
    # The slow burn-rate group's `interval:` (its 1d and 3d windows: each evaluation reads days of samples per
    # series); None: the same as every other group.
    slow_evaluation_interval: str | None = None

    def window(self, standard: str) -> str:
        """A range-vector window: scaled, but at least MIN_RANGE_SCRAPES scrapes long."""
        seconds = parse_duration(standard) // self.scale
        return format_duration(max(seconds, MIN_RANGE_SCRAPES * self.scrape_interval_s))

    def hold(self, standard: str) -> str:
        """A `for:` duration or a staleness threshold: scaled without a floor (0s is a valid `for`)."""
        seconds = parse_duration(standard)
        if seconds % self.scale:
            raise ValueError(f"{standard} does not divide by {self.scale}: pick a duration that scales exactly")
        return format_duration(seconds // self.scale)


# The slow burn (a ticket after `for: 15m`) loses nothing at one evaluation every 5 minutes, while recomputing 1-
# and 3-day windows at the server's pace kept cores busy (issue 24). Natively those windows are 48m and 2h24m long
# and an experiment lasts minutes: every group keeps the 2 s pace.
STANDARD = Profile(name="standard", scale=1, scrape_interval_s=15, evaluation_interval=None,
                   slow_evaluation_interval="5m")
NATIVE = Profile(name="native", scale=NATIVE_SCALE, scrape_interval_s=2, evaluation_interval="2s")
PROFILES: dict[str, Profile] = {p.name: p for p in (STANDARD, NATIVE)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}") from None
