"""Chaos Toolkit probes of the chaoslab extension: readiness, Prometheus checks, alerts and their notifications,
time to recover, the shop as a customer sees it, and the data audit.

Two kinds of probes:
- measurements return a value for a tolerance (steady-state hypothesis): `service_ready`, `error_ratio`, ...;
- expectations wait for or check something and raise ActivityFailed when it does not happen in time
  (`wait_for_alert`, `time_to_recover`, `place_order` with `expect_status`, ...). In a method, a raised probe
  marks the run's activity `failed`, which the chaoslab verdict counts as a failed experiment (chaos run
  itself exits 0 then). Their results carry {"measure": name, "seconds": s} for the verdict's measurements.
Every function is synchronous, finds the lab through its configuration (chaoslab.chaos.lab) and returns
JSON-serialisable data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos import broker, marks
from chaoslab.chaos.lab import Configuration, Lab, activity_errors
from chaoslab.chaos.security import (  # the security faults' probes: callers, handshakes, refusals
    call_as,
    denied_calls,
    handshake_failures,
    tls_handshakes,
    wait_for_handshake_failures,
)
from chaoslab.clients import shop
from chaoslab.clients.admin import replicas_of
from chaoslab.lab import audit, faults, webhook
from chaoslab.lab.probes import all_ready, poll, ready_replicas
from chaoslab.lab.probes import broker_serving as _broker_serving
from chaoslab.observability import slos
from services import contract

DEFAULT_WINDOW = "30s"
BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open"}


def _measure(name: str, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"measure": name, "seconds": round(seconds, 3), **extra}


@dataclass(frozen=True)
class Measurement:
    start: str  # a key of START: the moment the measurement counts from
    until: str  # what ends it
    probes: tuple[str, ...]  # the probes that measure it


# The moments a measurement can count from. Actions set the marks (chaoslab.chaos.marks): every action that injects
# a fault marks "fault" at the moment it took effect; every action that undoes one marks "recovery".
RECOVERY_ACTIONS = ("start_service", "start_broker", "resume_replicas", "clear_faults", "purge_queue",
                    "end_kernel_faults", "restore_lab", "restore_certificates", "call_outside_graph")
START = {
    "fault": "the last fault this run injected (the moment its action took effect; the probe's own start when "
             "the run injected none)",
    "recovery": f"the last undoing of a fault ({', '.join(RECOVERY_ACTIONS)}; restore_lab only when it resumed "
                "or started something), else the last fault, else the probe's own start",
    "since": "the probe's `since` argument (a unix time or a mark name), else the last fault (for a resolved "
             "notification: the last recovery, else the last fault), else the probe's own start",
}

# Every measurement a probe returns, from when and until what: one table for the code (`_measured` takes its start
# from here) and for docs/extension.md (generated from it), so the two cannot say different things.
MEASUREMENTS: dict[str, Measurement] = {
    "time_to_recover": Measurement("recovery", "the service has `min_ready` (default: all) replicas ready",
                                   ("time_to_recover",)),
    "time_to_unready": Measurement("fault", "no replica of the service answers ready", ("wait_for_unready",)),
    "time_to_steady": Measurement("recovery", "the service's error ratio over `window` is at most `max_ratio`",
                                  ("wait_for_error_ratio",)),
    "time_to_backlog": Measurement("fault", "orders' outbox holds at least `min_events` unpublished events",
                                   ("wait_for_outbox_backlog",)),
    "breaker_open": Measurement("fault", "a replica's breaker was seen open", ("wait_for_breaker",)),
    "breaker_half-open": Measurement("recovery", "the breaker is half-open on every replica", ("wait_for_breaker",)),
    "breaker_closed": Measurement("recovery", "the breaker is closed on every replica", ("wait_for_breaker",)),
    "time_to_detect": Measurement("fault", "Prometheus reports the alert firing", ("wait_for_alert",)),
    "time_to_pending": Measurement("fault", "Prometheus reports the alert pending", ("wait_for_alert",)),
    "time_to_resolve": Measurement("recovery", "Prometheus reports the alert inactive", ("wait_for_alert",)),
    "time_to_notify": Measurement("since", "the lab's webhook received Alertmanager's firing notification",
                                  ("wait_for_notification",)),
    "time_to_notify_resolved": Measurement("since", "the webhook received the resolved notification",
                                           ("wait_for_notification",)),
    "time_to_refuse": Measurement("fault", "an order is refused with the expected status",
                                  ("wait_for_order_refused",)),
    "time_to_queue": Measurement("fault", "the queue holds at least `min_messages` messages",
                                 ("wait_for_queue_messages",)),
    "fault_duration": Measurement("fault", "no fault is left active (their TTLs ran out or they were ended)",
                                  ("wait_for_faults_expired", "wait_for_kernel_faults_ended")),
    "time_to_clock": Measurement("recovery", "the replica's clock is within `within_s` of `offset_s`",
                                 ("wait_for_clock_offset",)),
    "time_to_restart": Measurement("fault", "the replica runs again under a new pid and answers ready",
                                   ("wait_for_restart",)),
    "time_to_orders": Measurement("recovery", "`count` orders in a row are accepted (201) through the gateway",
                                  ("wait_for_orders_accepted",)),
}


def _start(name: str, started_wall: float) -> float:
    """The moment measurement `name` counts from (MEASUREMENTS[name].start; see START)."""
    kind = MEASUREMENTS[name].start
    fault = marks.since(None, started_wall)
    if kind == "recovery":
        recovery = marks.last("recovery")
        if recovery is not None and (marks.last("fault") is None or recovery >= fault):
            return recovery
    return fault


def _measured(name: str, started_wall: float, **extra: Any) -> dict[str, Any]:
    """Measurement `name`, counted from its start (MEASUREMENTS) until now."""
    return _measure(name, time.time() - _start(name, started_wall), **extra)


# -- readiness -------------------------------------------------------------------------------------------------

def replicas_ready(service: str, configuration: Configuration = None) -> dict[str, Any]:
    """Each replica's readiness (its /health/ready, asked now): {"ready", "total", "replicas": {name: bool}}."""
    ready = ready_replicas(Lab.of(configuration).registry, service)
    return {"service": service, "ready": sum(ready.values()), "total": len(ready), "replicas": ready}


def service_ready(service: str, min_ready: int | None = None, configuration: Configuration = None) -> bool:
    """True when at least `min_ready` replicas (default: all of them) answer ready."""
    state = replicas_ready(service, configuration)
    wanted = state["total"] if min_ready is None else min_ready
    return state["total"] > 0 and state["ready"] >= wanted


def lab_ready(configuration: Configuration = None) -> bool:
    """Every replica of every service ready, and the broker serving."""
    reg = Lab.of(configuration).registry
    return _broker_serving(reg) and all_ready(reg)


def time_to_recover(service: str, timeout_s: float = 30.0, min_ready: int | None = None,
                    configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the service has `min_ready` (default: all) replicas ready again; measures time_to_recover (from
    the last undoing of a fault, else the fault: see MEASUREMENTS). Raises when it does not recover within
    `timeout_s`."""
    started_wall = time.time()
    total = len(Lab.of(configuration).replicas(service))
    wanted = total if min_ready is None else int(min_ready)

    def recovered() -> bool:
        # Asked afresh each time: in compose a restarted container is found by DNS again, maybe at a new address.
        return sum(ready_replicas(Lab.of(configuration).registry, service).values()) >= wanted

    with activity_errors():
        faults.wait_until(recovered, timeout_s, f"{wanted} ready replica(s) of {service}")
    return _measured("time_to_recover", started_wall, service=service, ready=wanted)


def broker_serving(configuration: Configuration = None) -> bool:
    """The lab's RabbitMQ takes AMQP connections and serves its metrics."""
    return _broker_serving(Lab.of(configuration).registry)


# -- Prometheus ------------------------------------------------------------------------------------------------

def prometheus_url(configuration: Configuration = None) -> str:
    """The lab's Prometheus, for a dynamic configuration entry: chaostoolkit-prometheus reads
    `prometheus_base_url` from the configuration, and this fills it from the registry."""
    return str(Lab.of(configuration).registry["prometheus_url"])


def error_ratio(service: str, window: str = DEFAULT_WINDOW, configuration: Configuration = None) -> float:
    """Share of the service's requests that failed server-side over `window` (0.0 without traffic)."""
    with activity_errors():
        value = Lab.of(configuration).prometheus.scalar(slos.error_ratio(service, window), empty=0.0)
    return round(float(value or 0.0), 6)


def expect_error_ratio(service: str = "gateway", max_ratio: float = 0.01, window: str = "30s",
                       configuration: Configuration = None) -> dict[str, Any]:
    """The service's error ratio over `window` now, raising when it is above `max_ratio` (an expectation for a
    method: "no errors while the fault lasts")."""
    ratio = error_ratio(service, window, configuration)
    if ratio > float(max_ratio):
        raise ActivityFailed(f"{service}'s error ratio over {window} is {ratio}, above {max_ratio}")
    return {"service": service, "window": window, "error_ratio": ratio}


def wait_for_unready(service: str, timeout_s: float = 30.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until no replica of the service answers ready (e.g. a consumer noticing its broker is gone);
    measures time_to_unready from the fault. Raises on timeout."""
    started_wall = time.time()
    reg = Lab.of(configuration).registry
    with activity_errors():
        faults.wait_until(lambda: not any(ready_replicas(reg, service).values()), float(timeout_s),
                          f"every replica of {service} not ready")
    return _measured("time_to_unready", started_wall, service=service)


def wait_for_outbox_backlog(min_events: int = 1, timeout_s: float = 30.0,
                            configuration: Configuration = None) -> dict[str, Any]:
    """Wait until orders' outbox holds at least `min_events` unsent events (the broker cannot take them)."""
    started_wall = time.time()
    found, _ = poll(lambda: outbox_backlog(configuration) >= int(min_events), float(timeout_s), 0.5)
    if not found:
        raise ActivityFailed(f"orders' outbox did not reach {min_events} unsent event(s) within {timeout_s:g} s")
    return _measured("time_to_backlog", started_wall, events=outbox_backlog(configuration))


def wait_for_error_ratio(service: str = "gateway", max_ratio: float = 0.01, window: str = "10s",
                         timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the service's error ratio over `window` is back under `max_ratio`: the end of an outage as
    clients see it, and what a hypothesis over the same window needs before it is checked again.
    Measures time_to_steady from the undoing of the fault. Raises on timeout."""
    prom = Lab.of(configuration).prometheus
    started_wall = time.time()
    query = slos.error_ratio(service, window)
    with activity_errors():
        found, _ = poll(lambda: (prom.scalar(query, empty=0.0) or 0.0) <= float(max_ratio), timeout_s, 1.0)
    if not found:
        raise ActivityFailed(f"{service}'s error ratio over {window} stayed above {max_ratio} for {timeout_s:g} s")
    return _measured("time_to_steady", started_wall, service=service)


def latency_percentile(service: str, quantile: float = 0.99, window: str = DEFAULT_WINDOW,
                       max_s: float | None = None, configuration: Configuration = None) -> float:
    """The service's latency quantile over `window` in seconds (0.0 without traffic). With `max_s`, raise
    when it is above (an expectation for a method)."""
    with activity_errors():
        value = Lab.of(configuration).prometheus.scalar(slos.latency_quantile(service, quantile, window),
                                                        empty=0.0)
    seconds = round(float(value or 0.0), 4)
    if max_s is not None and seconds > max_s:
        raise ActivityFailed(f"{service} p{quantile * 100:g} over {window} is {seconds} s, above {max_s} s")
    return seconds


def burn_rate(service: str, window: str = "10s", configuration: Configuration = None) -> float:
    """How fast the service spends its availability error budget over `window` (1 = exactly on budget)."""
    with activity_errors():
        value = Lab.of(configuration).prometheus.scalar(slos.slo(service, "availability").burn_rate(window),
                                                        empty=0.0)
    return round(float(value or 0.0), 3)


def error_budget_burn_ok(service: str, max_burn_rate: float, window: str = "10s",
                         configuration: Configuration = None) -> bool:
    """False when the service burns its error budget faster than `max_burn_rate` (for a safeguard)."""
    return burn_rate(service, window, configuration) <= float(max_burn_rate)


def breaker_state(service: str = "orders", upstream: str = "payments", configuration: Configuration = None) -> str:
    """The worst circuit breaker state of the service's replicas towards `upstream`, as scraped now."""
    with activity_errors():
        value = Lab.of(configuration).prometheus.scalar(
            f'max(circuit_breaker_state{{service="{service}", upstream="{upstream}"}})')
    return "unknown" if value is None else BREAKER_STATES.get(int(value), "unknown")


def wait_for_breaker(state: str = "open", service: str = "orders", upstream: str = "payments",
                     timeout_s: float = 30.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until a replica's breaker is `state` ("open": seen open at least once; "closed": closed on every
    replica). An open breaker turns half-open every reset period, so "open" is looked for over 10 s."""
    prom = Lab.of(configuration).prometheus
    started_wall = time.time()
    if state == "open":
        expr = f'max(max_over_time(circuit_breaker_state{{service="{service}", upstream="{upstream}"}}[10s])) == 2'
    else:
        wanted = {v: k for k, v in BREAKER_STATES.items()}[state]
        expr = f'max(circuit_breaker_state{{service="{service}", upstream="{upstream}"}}) == {wanted}'
    with activity_errors():
        found, _ = poll(lambda: prom.query(expr), timeout_s, 1.0)
    if not found:
        raise ActivityFailed(f"the {service} -> {upstream} breaker was not {state} within {timeout_s:g} s")
    return _measured(f"breaker_{state}", started_wall, service=service, upstream=upstream)


def _received(reg: dict[str, Any], alert: str | None, status: str | None, since: float,
              labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every alert the lab's webhook receiver got after `since`: {"alert", "status", "labels", "received_at",
    "delay_s"}."""
    with activity_errors():
        seen = webhook.events(webhook.notifications(reg["webhook_url"], since))
    return [{"alert": e.name, "status": e.status, "labels": e.labels, "received_at": e.received_at,
             "delay_s": round(e.received_at - since, 3)} for e in seen if e.matches(alert, labels, status)]


# -- alerts ----------------------------------------------------------------------------------------------------

def alert_state(alert: str, labels: dict[str, str] | None = None, configuration: Configuration = None) -> str:
    """"firing", "pending" or "inactive" in Prometheus now."""
    with activity_errors():
        return Lab.of(configuration).prometheus.alert_state(alert, labels)


def wait_for_alert(alert: str, state: str = "firing", timeout_s: float = 60.0, labels: dict[str, str] | None = None,
                   configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the alert is `state` in Prometheus ("firing", "pending", or "inactive" once resolved).
    Measures time_to_detect (firing, from the last fault), time_to_pending (from the last fault) or
    time_to_resolve (inactive, from the last undoing of the fault). Raises on timeout."""
    prom = Lab.of(configuration).prometheus
    started_wall = time.time()
    with activity_errors():
        found, _ = poll(lambda: prom.alert_state(alert, labels) == state, timeout_s, 1.0)
        if not found:
            raise ActivityFailed(f"alert {alert} was not {state} within {timeout_s:g} s "
                                 f"(now {prom.alert_state(alert, labels)})")
    name = {"firing": "time_to_detect", "inactive": "time_to_resolve"}.get(state, f"time_to_{state}")
    return _measured(name, started_wall, alert=alert)


def alert_notifications(alert: str | None = None, status: str | None = None, since: float | str | None = None,
                        labels: dict[str, str] | None = None, configuration: Configuration = None) -> list[Any]:
    """Alerts the lab's webhook receiver got from Alertmanager since `since` (unix time, a mark name, or by
    default the last fault): [{"alert", "status", "labels", "received_at", "delay_s"}]."""
    start = marks.since(since, 0.0)
    return _received(Lab.of(configuration).registry, alert, status, start, labels)


def wait_for_notification(alert: str, status: str = "firing", timeout_s: float = 60.0,
                          since: float | str | None = None, labels: dict[str, str] | None = None,
                          configuration: Configuration = None) -> dict[str, Any]:
    """Wait until Alertmanager notified the webhook of `alert` in `status` since `since` (default: the last
    fault; for status "resolved" the last undoing of it). Measures time_to_notify (firing) or
    time_to_notify_resolved, from that moment until the webhook received it. Raises on timeout."""
    reg = Lab.of(configuration).registry
    if since is None and status == "resolved":
        start = _start("time_to_recover", time.time())  # the last recovery, else the last fault
    else:
        start = marks.since(since, time.time())
    found, _ = poll(lambda: _received(reg, alert, status, start, labels), timeout_s, 1.0)
    if not found:
        raise ActivityFailed(f"no {status} notification of {alert} within {timeout_s:g} s")
    suffix = "" if status == "firing" else f"_{status}"
    return _measure(f"time_to_notify{suffix}", found[0]["delay_s"], alert=alert)


# -- the shop, as a customer -----------------------------------------------------------------------------------

def _expect(what: str, result: dict[str, Any], expect_status: int | list[int] | None,
            max_seconds: float | None, expect_detail: str | list[str] | None = None) -> dict[str, Any]:
    wanted = [expect_status] if isinstance(expect_status, int) else expect_status
    if wanted is not None and result["status"] not in wanted:
        raise ActivityFailed(f"{what} answered {result['status']}, expected {wanted}: {result.get('detail', '')}")
    texts = [expect_detail] if isinstance(expect_detail, str) else expect_detail
    if texts is not None and not any(text in result.get("detail", "") for text in texts):
        raise ActivityFailed(f"{what} answered {result['status']} without any of {texts} in its problem: "
                             f"{result.get('detail', '')}")
    if max_seconds is not None and result["seconds"] > max_seconds:
        raise ActivityFailed(f"{what} took {result['seconds']} s, more than {max_seconds} s")
    return result


def _place(lab: Lab, timeout_s: float) -> dict[str, Any]:
    with activity_errors():
        return lab.customer.call(lambda customer: customer.place_order(timeout_s=timeout_s))


def customer_session(configuration: Configuration = None) -> dict[str, Any]:
    """Log the probe customer in now (registering it on first use) and keep the token for later probes."""
    with activity_errors():
        Lab.of(configuration).customer.customer(fresh=True)
    return {"logged_in": True}


def customer_login(expect_status: int | list[int] | None = None, max_seconds: float | None = None,
                   timeout_s: float = 10.0, configuration: Configuration = None) -> dict[str, Any]:
    """POST /api/auth/login as the probe customer: {"status", "seconds"} (raises on an unexpected answer)."""
    probe = Lab.of(configuration).customer
    with activity_errors():
        probe.customer()  # make sure the account exists while auth can still answer
    creds = probe.credentials()
    result = shop.timed(lambda: probe.client.login(creds["email"], creds["password"], timeout_s=timeout_s))
    return _expect("login", result, expect_status, max_seconds)


def call_api(path: str = "/api/users/me", expect_status: int | list[int] | None = None,
             max_seconds: float | None = None, timeout_s: float = 10.0,
             expect_detail: str | list[str] | None = None,
             configuration: Configuration = None) -> dict[str, Any]:
    """GET a gateway path with the probe customer's token: {"status", "seconds"}."""
    with activity_errors():
        result = Lab.of(configuration).customer.call(lambda customer: customer.get(path, timeout_s=timeout_s))
    return _expect(f"GET {path}", result, expect_status, max_seconds, expect_detail)


def place_order(expect_status: int | list[int] | None = None, max_seconds: float | None = None,
                timeout_s: float = 15.0, expect_detail: str | list[str] | None = None,
                configuration: Configuration = None) -> dict[str, Any]:
    """Place one order through the gateway: {"status", "seconds"}; with `expect_status` / `max_seconds` /
    `expect_detail` (a text the problem's body must hold, or a list of which it must hold one), raise when the
    answer differs or is slower (e.g. fail fast with 503 instead of hanging)."""
    return _expect(f"POST {shop.ORDERS}", _place(Lab.of(configuration), timeout_s), expect_status, max_seconds,
                   expect_detail)


def wait_for_order_refused(status: int | list[int] = 503, expect_detail: str | list[str] | None = None,
                           timeout_s: float = 60.0, every_s: float = 0.5,
                           configuration: Configuration = None) -> dict[str, Any]:
    """Place orders (one every `every_s`) until one is refused with `status` (and a problem holding
    `expect_detail`): a fault that shows only once the service needs what it took (a full disk: SQLite writes
    into its WAL's slack until it must grow). Measures time_to_refuse from the fault; raises on timeout, or on a
    refusal of another kind."""
    lab = Lab.of(configuration)
    wanted = [status] if isinstance(status, int) else status
    started_wall = time.time()
    deadline = time.monotonic() + float(timeout_s)
    accepted = 0
    while time.monotonic() < deadline:
        result = _place(lab, 15.0)
        if result["status"] in wanted:
            _expect(f"POST {shop.ORDERS}", result, wanted, None, expect_detail)
            return _measured("time_to_refuse", started_wall, accepted_before=accepted)
        if result["status"] not in (200, 201):
            raise ActivityFailed(f"POST {shop.ORDERS} answered {result['status']}, expected 201 or {wanted}: "
                                 f"{result.get('detail', '')}")
        accepted += 1
        time.sleep(float(every_s))
    raise ActivityFailed(f"no order refused with {wanted} within {timeout_s:g} s ({accepted} accepted)")


def wait_for_orders_accepted(count: int = 3, timeout_s: float = 30.0,
                             configuration: Configuration = None) -> dict[str, Any]:
    """Place orders until `count` in a row are accepted (201) through the gateway (after a fault is undone, the
    gateway's breaker or a stale connection may still refuse a few). Measures time_to_orders from the last undoing
    of a fault; raises on timeout."""
    lab = Lab.of(configuration)
    started_wall = time.time()
    streak = {"n": 0}

    def accepted() -> bool:
        streak["n"] = streak["n"] + 1 if _place(lab, 15.0)["status"] == 201 else 0
        return streak["n"] >= count

    found, _ = poll(accepted, float(timeout_s), 0.5)
    if not found:
        raise ActivityFailed(f"orders were not accepted {count} times in a row within {timeout_s:g} s")
    return _measured("time_to_orders", started_wall)


def place_orders(count: int = 5, expect_status: int | list[int] | None = 201, max_seconds: float | None = None,
                 timeout_s: float = 15.0, configuration: Configuration = None) -> dict[str, Any]:
    """Place `count` orders one after the other; raise at the first unexpected answer."""
    lab = Lab.of(configuration)
    results = [_expect(f"POST {shop.ORDERS}", _place(lab, timeout_s), expect_status, max_seconds)
               for _ in range(int(count))]
    return {"count": len(results), "statuses": sorted({r["status"] for r in results}),
            "max_seconds": max(r["seconds"] for r in results) if results else 0.0}


# -- data --------------------------------------------------------------------------------------------------------

def data_audit(settle_s: float = 10.0, timeout_s: float = 60.0, raise_on_failure: bool = False,
               configuration: Configuration = None) -> dict[str, Any]:
    """Every acknowledged order has its payment and its notification, none duplicated (each service's
    /admin/audit). Orders younger than `settle_s` may still be in flight; the audit is repeated until it holds
    or `timeout_s` passed. Returns the report ({"ok": bool, counts...}); with `raise_on_failure`, raises."""
    with activity_errors():
        report = audit.data_audit(Lab.of(configuration).registry, settle_s, timeout_s)
    if raise_on_failure and not report["ok"]:
        raise ActivityFailed(f"data audit failed: {report}")
    return report


def outbox_backlog(configuration: Configuration = None) -> int:
    """Order events written but not yet confirmed by the broker (orders' /admin/audit)."""
    lab = Lab.of(configuration)
    with activity_errors():
        return int(lab.admin.service_audit(lab.registry, "orders").get("unsent", 0))


def queue_messages(queue: str = contract.DEAD_LETTER_QUEUE, configuration: Configuration = None) -> int:
    """Messages ready in a queue, asked of the broker now."""
    return broker.queue_messages(Lab.of(configuration).registry, queue)


def wait_for_queue_messages(queue: str = contract.DEAD_LETTER_QUEUE, min_messages: int = 1,
                            timeout_s: float = 30.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until `queue` holds at least `min_messages`; raises on timeout."""
    reg = Lab.of(configuration).registry
    started_wall = time.time()
    found, _ = poll(lambda: broker.queue_messages(reg, queue) >= min_messages, timeout_s, 0.5)
    if not found:
        raise ActivityFailed(f"{queue} did not reach {min_messages} message(s) within {timeout_s:g} s")
    return _measured("time_to_queue", started_wall, queue=queue)


def active_faults(service: str | None = None, configuration: Configuration = None) -> int:
    """How many in-service faults are active across the replicas (of one service, or all)."""
    lab = Lab.of(configuration)
    listed = lab.admin.list_faults(replicas_of(lab.registry, [service] if service else None))
    return sum(len(r.get("faults", [])) for r in listed)


def wait_for_faults_expired(service: str | None = None, timeout_s: float = 60.0,
                            configuration: Configuration = None) -> dict[str, Any]:
    """Wait until no in-service fault is active any more (their TTL ran out); raises on timeout.
    Measures fault_duration from the injection: what a forgotten fault would have cost at most."""
    started_wall = time.time()
    with activity_errors():
        faults.wait_until(lambda: active_faults(service, configuration) == 0, float(timeout_s) + 5.0,
                          "every fault expired", interval_s=0.5)
    marks.mark("recovery")
    return _measured("fault_duration", started_wall, service=service)


# -- below the application (an isolated lab) ------------------------------------------------------------------------

def network_mode(configuration: Configuration = None) -> str:
    """"isolated" or "loopback" (a compose stack: "compose")."""
    lab = Lab.of(configuration)
    return "compose" if lab.is_compose else str(lab.registry.get("network", {}).get("mode", "loopback"))


def kernel_faults(kind: str | None = None, configuration: Configuration = None) -> int:
    """How many kernel faults (of `kind`) the lab holds now (0 for a loopback lab)."""
    lab = Lab.of(configuration)
    if network_mode(configuration) != "isolated":
        return 0
    from chaoslab.kernel import store

    spec = lab.isolated("kernel_faults")
    return sum(1 for r in store.records(spec) if kind is None or r.kind == kind)


def wait_for_kernel_faults_ended(timeout_s: float = 60.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the lab holds no kernel fault (their TTL ran out: the endpoints controller ended them).
    Measures fault_duration from the injection. Raises on timeout."""
    started_wall = time.time()
    found, _ = poll(lambda: kernel_faults(configuration=configuration) == 0, float(timeout_s), 0.5)
    if not found:
        raise ActivityFailed(f"kernel faults still in place after {timeout_s:g} s")
    marks.mark("recovery")
    return _measured("fault_duration", started_wall)


def tcp_connect(source: str, target: str, timeout_s: float = 2.0, expect: str | None = None,
                configuration: Configuration = None) -> dict[str, Any]:
    """Open a TCP connection from `source`'s namespace (a replica, or "clients") to `target` (a replica, or
    "broker"): {"outcome": connected | timeout | refused, "seconds"}; with `expect`, raise on another outcome."""
    from chaoslab.kernel import attest
    from chaoslab.kernel.faults import hosts

    spec = Lab.of(configuration).isolated("tcp_connect")
    with activity_errors():
        host = hosts(spec, target)[0]
        address, port = attest.endpoint(spec, host)
        seen = attest.tcp_connect(spec, hosts(spec, source)[0], address, port, float(timeout_s))
    if expect is not None and seen["outcome"] != expect:
        raise ActivityFailed(f"{source} -> {target}: {seen['outcome']} in {seen['seconds']} s, expected {expect}")
    return {"source": source, "target": target, **seen}


def clock_offset(service: str, replica: int | str = 1, configuration: Configuration = None) -> float:
    """The replica's wall clock minus the real time, in seconds (from its Date header; +-1 s)."""
    from chaoslab.kernel import attest

    spec = Lab.of(configuration).isolated("clock_offset")
    name = f"{service}-{replica}" if str(replica).isdigit() else str(replica)
    with activity_errors():
        return round(attest.replica_clock_offset(spec, name), 1)


def wait_for_clock_offset(service: str, offset_s: float = 0.0, replica: int | str = 1, within_s: float = 2.0,
                          timeout_s: float = 10.0, configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the replica's clock is `offset_s` (+- `within_s`) off the real time (libfaketime reads its clock
    file once a second: a clock set back is right a moment later). Raises on timeout."""
    started_wall = time.time()
    found, _ = poll(lambda: abs(clock_offset(service, replica, configuration) - float(offset_s)) <= within_s,
                    float(timeout_s), 0.3)
    if not found:
        raise ActivityFailed(f"the clock of {service}-{replica} is not {offset_s:+g} s within {timeout_s:g} s")
    return _measured("time_to_clock", started_wall, service=service)


def wait_for_restart(service: str, replica: int | str = 1, timeout_s: float = 30.0,
                     configuration: Configuration = None) -> dict[str, Any]:
    """Wait until the replica runs under a new pid and is ready (after a kill: the OOM killer's, a signal);
    the pid to compare with is the one the last fault's record holds, else the one running now."""
    lab = Lab.of(configuration)
    name = f"{service}-{replica}" if str(replica).isdigit() else str(replica)
    sv = lab.supervisor("wait_for_restart")
    started_wall = time.time()
    before = int(sv.process(name)["pid"])
    spec = lab.isolated("wait_for_restart") if network_mode(configuration) == "isolated" else None
    if spec is not None:
        from chaoslab.kernel import store

        for record in store.records(spec):
            pid = record.attestation.get("replicas", {}).get(name, {}).get("pid")
            if pid:
                before = int(pid)

    def restarted() -> bool:
        info = sv.process(name)
        return (info["statename"] == "RUNNING" and int(info["pid"]) != before
                and ready_replicas(lab.registry, service).get(name, False))

    with activity_errors():
        faults.wait_until(restarted, float(timeout_s), f"{name} running again under a new pid and ready")
    return _measured("time_to_restart", started_wall, replica=name)


__all__ = [
    "replicas_ready", "service_ready", "lab_ready", "time_to_recover", "broker_serving",
    "prometheus_url", "error_ratio", "wait_for_error_ratio", "latency_percentile", "burn_rate",
    "error_budget_burn_ok", "breaker_state",
    "wait_for_breaker",
    "alert_state", "wait_for_alert", "alert_notifications", "wait_for_notification",
    "customer_session", "customer_login", "call_api", "place_order", "place_orders", "wait_for_order_refused",
    "data_audit", "outbox_backlog", "queue_messages", "wait_for_queue_messages", "active_faults",
    "wait_for_faults_expired",
    "expect_error_ratio", "wait_for_unready", "wait_for_outbox_backlog",
    "network_mode", "kernel_faults", "wait_for_kernel_faults_ended", "tcp_connect", "clock_offset",
    "wait_for_clock_offset",
    "wait_for_restart",
    "call_as", "tls_handshakes", "handshake_failures", "denied_calls", "wait_for_handshake_failures",
    "wait_for_orders_accepted",
]
