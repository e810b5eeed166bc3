"""Error budget spent: how much of the shop's availability error budget a fault window cost, as a share of the
budget of the whole SLO period.

The shop's availability objective is the gateway's (chaoslab.observability.slos: 99.9% of requests answer without
a 5xx), and the burn-rate alerts are built for a 30-day period. The native lab runs every window 30 times faster
(profiles.NATIVE_SCALE), so its period is 30 days / 30 = one day. Over a window of W seconds with a share r of
failed requests, the burn rate is r / (1 - objective) and the budget spent is burn x W / period: a 30 s window at
100% errors spends 1000 x 30 / 86400 = 35% of the period's budget, as 15 minutes of full outage would of a real
30-day budget. It adds up over a run (a run that spends more than 1.0 overspent a whole period's budget).
"""

from __future__ import annotations

import math

from chaoslab.clients.prometheus import Prometheus
from chaoslab.observability import slos
from chaoslab.observability.profiles import NATIVE_SCALE

SLO_PERIOD_S = 30 * 86400  # the period the burn-rate alerts are designed for (slos.BURN_ALERTS)
NATIVE_PERIOD_S = SLO_PERIOD_S / NATIVE_SCALE
MIN_WINDOW_S = 10.0  # rate() over less than a few 2 s scrapes is empty or noise
SERVICE = "gateway"


def spent_share(error_ratio: float, window_s: float, objective: float, period_s: float = NATIVE_PERIOD_S) -> float:
    """The share of the period's error budget spent by `error_ratio` failures over `window_s` seconds."""
    return error_ratio / (1.0 - objective) * window_s / period_s


def spent(prometheus: str, start: float, end: float, service: str = SERVICE) -> float | None:
    """The budget the window [start, end] spent, read from Prometheus at its end; None without any request."""
    end = max(end, start + MIN_WINDOW_S)
    window_s = end - start
    slo = slos.slo(service, "availability")
    found = Prometheus(prometheus, timeout_s=15.0).query(slo.error_ratio(f"{max(1, math.ceil(window_s))}s"), at=end)
    if not found or math.isnan(found[0].value):
        return None
    return round(spent_share(found[0].value, window_s, slo.objective), 6)
