"""Alertmanager configuration: routing by severity, grouping, inhibition, one webhook receiver.

`render(url)` is the native lab's config (the lab writes it into its state dir); alerts/alertmanager.yml is
the compose/Kubernetes flavour, generated from the same function with the chaos runner's receiver.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from chaoslab.observability.alerts import alert_names
from chaoslab.observability.rules import GENERATED_HEADER

COMPOSE_WEBHOOK_URL = "http://chaos-runner:9095/alertmanager"
GROUP_BY = ("alertname", "service")


@dataclass(frozen=True)
class Timings:
    group_wait: str  # delay before a new group's first notification (part of the detection bound)
    group_interval: str  # delay before a changed group (new alert, resolved alert) is notified again
    repeat_interval: str  # resend an unchanged, still-firing group after this long


# native: a chaos run lasts minutes and measures how fast alerts fire and resolve, so Alertmanager adds
# at most ~1 s to firing and ~2 s to resolving. standard: close to Alertmanager's defaults, which batch
# bursts for people; kept at 10s/1m (not 30s/5m) so the compose chaos runner still sees resolutions.
TIMINGS: dict[str, Timings] = {
    "native": Timings(group_wait="1s", group_interval="2s", repeat_interval="5m"),
    "standard": Timings(group_wait="10s", group_interval="1m", repeat_interval="4h"),
}

# Symptoms that a whole service being down already explains: one page, not five.
_SERVICE_DOWN_SYMPTOMS = [n for n in alert_names() if "BurnRate" in n] + ["ReplicaDown"]
# What a dead broker causes downstream.
_BROKER_DOWN_SYMPTOMS = ["OutboxBacklogGrowing", "ConsumerStalled"]


def _regex(names: list[str]) -> str:
    return "|".join(names)


def config(webhook_url: str, profile: str = "native") -> dict[str, object]:
    """The configuration as a dict (see render)."""
    if profile not in TIMINGS:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(TIMINGS)}")
    timings = TIMINGS[profile]
    return {
        "route": {
            "receiver": "ticket",
            "group_by": list(GROUP_BY),
            "group_wait": timings.group_wait,
            "group_interval": timings.group_interval,
            "repeat_interval": timings.repeat_interval,
            "routes": [
                {"receiver": "page", "matchers": ['severity="page"']},
                {"receiver": "ticket", "matchers": ['severity="ticket"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": [f'alertname=~"{_regex(_SERVICE_DOWN_SYMPTOMS)}"'],
                "equal": ["service"],
            },
            {
                "source_matchers": ['alertname="BrokerDown"'],
                "target_matchers": [f'alertname=~"{_regex(_BROKER_DOWN_SYMPTOMS)}"'],
            },
        ],
        # Both severities end at the same webhook: the lab (or the compose chaos runner) records every
        # notification and tells them apart by the payload's `receiver`. A real deployment would send
        # `page` to a pager and `ticket` to a queue.
        "receivers": [
            {"name": name, "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
            for name in ("page", "ticket")
        ],
    }


def render(webhook_url: str, profile: str = "native") -> str:
    """Alertmanager YAML sending every notification (firing and resolved) to `webhook_url`."""
    body = yaml.safe_dump(config(webhook_url, profile), sort_keys=False, width=1_000_000)
    return f"# Alertmanager configuration, profile {profile}.\n" + body


def render_compose() -> str:
    """alerts/alertmanager.yml: compose and Kubernetes, notifying the chaos runner's receiver."""
    return GENERATED_HEADER + render(COMPOSE_WEBHOOK_URL, profile="standard")
