"""A Chaos Toolkit control that marks each experiment on the dashboards: when `chaos run` starts an experiment it
posts a Grafana annotation (a point, "started"), and when the experiment ends one spanning the whole run, with
its outcome. Both carry the tags `chaos` and `experiment` and the experiment's own tags; the Chaos dashboard's
"Chaos experiments" layer shows annotations tagged `chaos` (chaoslab/observability/dashboards/chaos.py). They are
posted as the gameday posts its fault windows (chaoslab.gameday.grafana).

Where Grafana is, first found wins: the control's arguments `grafana_url` / `grafana_token`; the experiment's
configuration keys `grafana_url` / `grafana_token`; the environment, $GRAFANA_URL with $GRAFANA_TOKEN (a service
account token) or $GRAFANA_USER and $GRAFANA_PASSWORD (basic auth; compose gives the chaos runner the admin
account). No URL: the control does nothing. A Grafana that does not answer costs a warning line, never the
experiment: the annotations are a view of the run, not part of it.

Declared for every experiment through Chaos Toolkit's settings (compose/chaos-runner/settings.yaml, which the
compose chaos runner reads as its ~/.chaostoolkit/settings.yaml):

    controls:
      grafana-annotations:
        provider: {type: python, module: chaoslab.chaos.annotations}

or in one experiment's "controls" the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from chaoslab.gameday.grafana import Annotation, post

logger = logging.getLogger("chaostoolkit")  # Chaos Toolkit's own logger: its console and chaostoolkit.log

TAGS = ("chaos", "experiment")
# When each experiment of this process started (a `chaos run` process runs one; keyed by the experiment's id).
_started: dict[int, float] = {}


def grafana_target(arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None,
                   env: Mapping[str, str] | None = None) -> tuple[str, str | None] | None:
    """(base URL, token) of the Grafana to post to, or None when none is configured. Basic-auth credentials from
    the environment go into the URL, percent-encoded, where chaoslab.gameday.grafana reads them."""
    env = os.environ if env is None else env
    config = configuration or {}
    url = arguments.get("grafana_url") or config.get("grafana_url") or env.get("GRAFANA_URL")
    if not url:
        return None
    token = arguments.get("grafana_token") or config.get("grafana_token") or env.get("GRAFANA_TOKEN") or None
    user, password = env.get("GRAFANA_USER"), env.get("GRAFANA_PASSWORD")
    parts = urlsplit(str(url))
    if token is None and user and password and parts.username is None:
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return str(url), token


def _shown(url: str) -> str:
    """The URL without credentials, for a log line (a URL that does not parse is not shown: a password with an
    unescaped "/" makes its tail look like the host and port)."""
    parts = urlsplit(url)
    try:
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "the configured Grafana URL"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _tags(experiment: Mapping[str, Any]) -> tuple[str, ...]:
    own = [str(t) for t in experiment.get("tags", []) if str(t) not in TAGS]
    return (*TAGS, *own)


def _journal_time(value: object) -> float | None:
    """A journal's start/end (naive ISO 8601 in UTC, as chaoslib writes them) as a unix time."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _post(arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None, annotation: Annotation) -> None:
    target = grafana_target(arguments, configuration)
    if target is None:
        logger.debug("No Grafana configured (GRAFANA_URL): no annotation")
        return
    url, token = target
    try:
        urlsplit(url).port  # noqa: B018 - parsed for its complaint: "http://user:pass/word@host" is no address
        result = post(url, token, [annotation])
    except Exception as exc:  # noqa: BLE001 - an annotation must never fail the experiment
        reason = ("not a URL with a host and a port: percent-encode the credentials in it"
                  if isinstance(exc, ValueError) else type(exc).__name__)  # never the text: it may quote a password
        result = {"posted": 0, "errors": [reason]}
    if result["posted"]:
        logger.info(f"Grafana annotation posted to {_shown(url)}: {annotation.text}")
    else:
        logger.warning(f"Grafana annotation not posted to {_shown(url)} ({'; '.join(result['errors'])}); "
                       "the experiment goes on")


def before_experiment_control(context: dict[str, Any], configuration: dict[str, Any] | None = None,
                              secrets: dict[str, Any] | None = None, **arguments: Any) -> None:
    """The experiment starts: a point annotation."""
    started = time.time()
    _started[id(context)] = started
    title = str(context.get("title", "experiment"))
    _post(arguments, configuration, Annotation(started, started, f"chaos experiment started: {title}",
                                               _tags(context)))


def after_experiment_control(context: dict[str, Any], state: dict[str, Any] | None = None,
                             configuration: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None,
                             **arguments: Any) -> None:
    """The experiment ended: a region over the whole run, with its outcome (Chaos Toolkit's status, and whether
    the steady state deviated)."""
    ended = time.time()
    journal = state or {}
    started = _started.pop(id(context), None) or _journal_time(journal.get("start")) or ended
    status = str(journal.get("status") or "unknown")
    outcome = f"{status}, deviated" if journal.get("deviated") else status
    title = str(context.get("title", "experiment"))
    _post(arguments, configuration, Annotation(started, ended, f"chaos experiment {title}: {outcome}",
                                               _tags(context)))
