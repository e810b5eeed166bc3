"""`chaoslab demo` (the first half of `make demo`) against a running lab: one order through every hop, with its
trace and log lines; and a walk that cannot go through says which step failed and exits 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chaoslab.clients.admin import AdminClient, fault_body, replicas_of

pytestmark = pytest.mark.lab

STEPS = ("register", "log in", "profile", "place order", "retry (same key)", "notifications")


def test_demo_walks_one_order_through_the_shop(lab: dict[str, Any], chaoslab_cli: Callable[..., Any]) -> None:
    done = chaoslab_cli("demo", "--state-dir", lab["state_dir"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using the lab running in" in done.stdout
    for step in STEPS:
        assert step in done.stdout, step
    assert "the order went through" in done.stdout
    assert "log lines carry this trace: chaoslab logs --trace" in done.stdout
    assert "Traceback" not in done.stderr


def test_demo_names_the_step_that_failed(lab: dict[str, Any], chaoslab_cli: Callable[..., Any]) -> None:
    # Orders answers its /orders route with 503 (one request: two failures for the gateway's breaker, which
    # opens at five, so the lab the other tests share stays as it was).
    admin = AdminClient.of(lab)
    orders = replicas_of(lab, ["orders"])
    admin.add_fault(orders, fault_body("error", status=503, route="/orders", ttl_s=30))
    try:
        done = chaoslab_cli("demo", "--state-dir", lab["state_dir"])
    finally:
        admin.clear_faults(orders)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the walk-through failed" in done.stderr and "place order" in done.stderr
    assert "Traceback" not in done.stderr
