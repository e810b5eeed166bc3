"""Which fault an alert belongs to when faults overlap (quick): the alert about the fault's target, then the
call graph's dependents, then the latest fault; never one that was over (beyond its grace) or not yet injected."""

from __future__ import annotations

import pytest

from chaoslab.gameday.alerts import AlertInterval
from chaoslab.gameday.attribution import Span, attribute, attribute_one, dependents

pytestmark = pytest.mark.quick

BROKER = Span("broker-out", "broker", 100.0, 130.0)
PAYMENTS = Span("payments-down", "payments", 105.0, 120.0)


def fired(name: str, at: float, **labels: str) -> AlertInterval:
    return AlertInterval(name, {"alertname": name, **labels}, at, None)


def test_the_alert_about_a_target_goes_to_that_fault() -> None:
    assert attribute_one(fired("BrokerDown", 110.0, job="rabbitmq"), [BROKER, PAYMENTS]) == \
        ("broker-out", "names the target (broker)")
    assert attribute_one(fired("ServiceDown", 112.0, service="payments"), [BROKER, PAYMENTS])[0] == "payments-down"
    # orders' breaker towards payments names payments as its upstream
    assert attribute_one(fired("CircuitBreakerOpen", 112.0, service="orders", upstream="payments"),
                         [BROKER, PAYMENTS])[0] == "payments-down"


def test_a_downstream_alert_goes_to_what_it_depends_on() -> None:
    assert "gateway" in dependents("payments") and "orders" in dependents("payments")
    assert {"orders", "notifications"} <= dependents("broker")
    fault, reason = attribute_one(fired("ConsumerLagHigh", 115.0, service="notifications"),
                                  [PAYMENTS, BROKER])
    assert fault == "broker-out" and "depends on broker" in reason


def test_otherwise_the_latest_fault_and_never_one_not_acting() -> None:
    assert attribute_one(fired("LatencyBurnRateFast", 111.0, service="users"), [BROKER, PAYMENTS]) == \
        ("payments-down", "acting when it fired")
    assert attribute_one(fired("ServiceDown", 90.0, service="payments"), [BROKER, PAYMENTS])[0] is None
    assert attribute_one(fired("ServiceDown", 500.0, service="payments"), [BROKER, PAYMENTS])[0] is None
    [one] = attribute([fired("BrokerDown", 150.0, job="rabbitmq")], [BROKER, PAYMENTS])
    assert one.fault == "broker-out" and one.alert == "BrokerDown (rabbitmq)"  # within the grace after its end


def test_a_burn_rate_alert_goes_to_the_fault_that_spent_the_budget() -> None:
    """The gateway depends on both; the later fault was harmless, the earlier one made the errors that burn."""
    costly = Span("orders-killed", "orders", 100.0, 104.0, spent=0.02)
    harmless = Span("payments-killed", "payments", 106.0, 110.0, spent=0.0)
    fault, reason = attribute_one(fired("AvailabilityBurnRateFast", 112.0, service="gateway"), [costly, harmless])
    assert fault == "orders-killed" and "the most error budget spent (2.0%)" in reason
