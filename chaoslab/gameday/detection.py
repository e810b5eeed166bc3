"""The time-to-detect an alert's rule promises, computed from the rule itself and the pipeline's timings, so that a
measured time-to-detect can be judged against it: earlier than possible means the measurement is wrong, much
later means the rule or the pipeline (scrapes, rule evaluation, Alertmanager) is slower than it should be.

The model (docs/detection.md works one example through it). After the fault's injection at t = 0:

1. The rule's expression becomes true at some time in [c_lo, c_hi]:
   - a target-down rule (`up == 0`): at the first scrape that fails, within one scrape interval S plus the scrape
     timeout (a stopped process answers nothing until the timeout; the lab's timeout is S): [0, 2S];
   - a burn-rate rule (a long and a short window, each over a threshold th = f x budget; any of its window
     pairs): the fault makes a share r of the requests bad, while the window held a share R0 when it began. With
     steady traffic the ratio over a window W moves linearly from R0 to r over W seconds and crosses th at
     t = (th - R0) W / (r - R0) (at once when R0 is already over th; never when r is not). A pair holds when both
     of its windows have crossed: the later of the two; the rule holds at the earliest pair. r is measured (the
     SLO's bad share between the injection and the notification), R0 too (each window's recorded ratio at the
     injection). The linear model is +-25% (traffic is not steady under a fault), the recording rule adds up to one
     evaluation I and the counters one scrape S: [0.75 t - S, 1.25 t + S + I].
   - any other rule: when its expression first returned a value, read back from Prometheus at 1 s steps over
     the fault ([onset - 1 s, onset]): the model then checks the rest of the pipeline only.
2. The alert is pending at the first evaluation after that (+0..I) and firing `for` F later, at an evaluation
   (+0..I): firing in [c_lo + F, c_hi + F + 2I].
3. Alertmanager notifies a new group after group_wait G, and the webhook receives it (+ delivery, 1 s):
   notified in [c_lo + F + G, c_hi + F + 2I + G + 1].

The band a measurement is judged against is [earliest, latest + slack], slack = max(2 s, 25% of latest): a busy
machine delays evaluation goroutines and HTTP posts, which is not a mis-tuned rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaoslab.clients.prometheus import Prometheus
from chaoslab.observability import alerts as catalogue
from chaoslab.observability import slos
from chaoslab.observability.alertmanager import TIMINGS
from chaoslab.observability.profiles import NATIVE, Profile, parse_duration

DELIVERY_S = 1.0
SLACK_MIN_S = 2.0
SLACK_SHARE = 0.25
ONSET_STEP_S = 1.0


@dataclass(frozen=True)
class Pipeline:
    """The timings between a condition and a notification: scrape S, rule evaluation I, Alertmanager's G."""

    scrape_s: float
    evaluation_s: float
    group_wait_s: float
    profile: Profile

    @classmethod
    def native(cls) -> Pipeline:
        evaluation = parse_duration(NATIVE.evaluation_interval or "2s")
        return cls(float(NATIVE.scrape_interval_s), float(evaluation),
                   float(parse_duration(TIMINGS["native"].group_wait)), NATIVE)


@dataclass
class Prediction:
    alert: str
    model: str  # "target-down", "burn-rate", "onset"
    condition_s: tuple[float, float]  # when the expression becomes true, after the injection
    hold_s: float
    earliest_s: float
    latest_s: float  # without the slack
    slack_s: float
    how: str  # the numbers that went in, for people

    @property
    def band(self) -> tuple[float, float]:
        return self.earliest_s, self.latest_s + self.slack_s

    def judge(self, measured_s: float) -> tuple[bool, str]:
        lo, hi = self.band
        if measured_s < lo:
            return False, (f"earlier than the rule allows ({measured_s:.1f} s < {lo:.1f} s): the measurement is "
                           f"wrong (the injection time, or an alert already firing)")
        if measured_s > hi:
            return False, (f"later than the rule promises ({measured_s:.1f} s > {hi:.1f} s): the rule or the "
                           f"pipeline is slower than it should be")
        return True, f"within the {lo:.1f}-{hi:.1f} s the rule promises"

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "band": list(self.band)}


def rule_of(name: str, labels: dict[str, str], profile: Profile = NATIVE) -> catalogue.AlertRule | None:
    """The catalogue's rule for this alert instance (alerts written per service carry a static `service`)."""
    rules = [r for r in catalogue.alert_rules(profile) if r.alert == name]
    matching = [r for r in rules if all(labels.get(k) == v for k, v in r.labels.items() if k in labels)]
    return (matching or rules or [None])[0]


def _burn_pairs(rule: catalogue.AlertRule,
                profile: Profile) -> tuple[slos.SLO, list[tuple[float, str, str]]] | None:
    """The SLO and the (threshold, long window, short window) of each pair of a burn-rate alert."""
    for alert in slos.BURN_ALERTS:
        for item in slos.SLOS:
            if rule.alert == f"{item.kind.capitalize()}BurnRate{alert.suffix}" and \
                    rule.labels.get("service") == item.service:
                return item, [(pair.factor * item.error_budget, profile.window(pair.long), profile.window(pair.short))
                              for pair in alert.windows]
    return None


def bad_share(prometheus: Prometheus, item: slos.SLO, start: float, end: float) -> float | None:
    """r: the share of the SLO's requests that were bad between `start` and `end` (None: no request)."""
    seconds = max(1, int(round(end - start)))
    found = prometheus.query(item.error_ratio(f"{seconds}s"), at=end)
    return float(found[0].value) if found else None


def window_share(prometheus: Prometheus, item: slos.SLO, window: str, at: float) -> float:
    """R0: the share of bad requests the recorded window held at `at` (0 without traffic)."""
    found = prometheus.query(f'{slos.recorded_error_ratio(window)}{{slo="{item.name}"}}', at=at)
    return float(found[0].value) if found else 0.0


def crossing(threshold: float, window_s: float, before: float, during: float) -> float | None:
    """Seconds until a window's ratio, moving linearly from `before` to `during` over `window_s`, exceeds the
    threshold (0: it already does; None: it never will)."""
    if before > threshold:
        return 0.0
    if during <= threshold:
        return None
    return (threshold - before) * window_s / (during - before)


def onset(prometheus: Prometheus, rule: catalogue.AlertRule, start: float, end: float) -> float | None:
    """Seconds after `start` at which the rule's expression first returned a value (None: it never did)."""
    times = [t for s in prometheus.query_range(rule.expr, start, end, ONSET_STEP_S) for t, _ in s.points]
    return round(min(times) - start, 3) if times else None


def predict(name: str, labels: dict[str, str], pipeline: Pipeline, *, prometheus: Prometheus | None = None,
            start: float | None = None, end: float | None = None) -> Prediction | None:
    """The band the rule promises for this alert, after an injection at `start` (the fault lasting until `end`);
    None when the catalogue has no such rule, or a burn rate the fault never reached."""
    rule = rule_of(name, labels, pipeline.profile)
    if rule is None:
        return None
    hold = float(parse_duration(rule.hold))
    s, i = pipeline.scrape_s, pipeline.evaluation_s
    burn = _burn_pairs(rule, pipeline.profile)
    if "up{" in rule.expr and "== 0" in rule.expr:
        model, condition, how = "target-down", (0.0, 2 * s), f"the first failed scrape: 0-{2 * s:g} s"
    elif burn is not None:
        if prometheus is None or start is None or end is None:
            return None
        item, pairs = burn
        r = bad_share(prometheus, item, start, end)
        if r is None:
            return None
        times = []
        for threshold, long_, short in pairs:
            each = [crossing(threshold, float(parse_duration(w)), window_share(prometheus, item, w, start), r)
                    for w in (long_, short)]
            if all(t is not None for t in each):
                times.append(max(t for t in each if t is not None))
        if not times:
            return None
        first = min(times)
        model, condition = "burn-rate", (max(0.0, 0.75 * first - s), 1.25 * first + s + i)
        how = (f"{r:.1%} of {item.name}'s requests bad: its windows cross their thresholds after {first:.1f} s")
    else:
        if prometheus is None or start is None or end is None:
            return None
        seen = onset(prometheus, rule, start, end)
        if seen is None:
            return None
        model, condition, how = "onset", (max(0.0, seen - ONSET_STEP_S), seen), f"its expression held from {seen:g} s"
    earliest = condition[0] + hold + pipeline.group_wait_s
    latest = condition[1] + hold + 2 * i + pipeline.group_wait_s + DELIVERY_S
    slack = max(SLACK_MIN_S, SLACK_SHARE * latest)
    how += (f"; for {hold:g} s; evaluation every {i:g} s, scrape every {s:g} s; Alertmanager's group_wait "
            f"{pipeline.group_wait_s:g} s")
    return Prediction(name, model, (round(condition[0], 3), round(condition[1], 3)), hold, round(earliest, 3),
                      round(latest, 3), round(slack, 3), how)
