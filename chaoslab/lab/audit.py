"""The data audit: every acknowledged order has its payment and its notification, none duplicated.

Each service answers for its own data (GET /admin/audit, docs/design.md); the audit joins the three views:
orders (id, payment_id, event_id, created_at), payments (payment_id, order_ref) and notifications
(event_id, notifications, duplicates). Events travel asynchronously, so an order younger than `settle_s`
may not have its notification yet: it is counted as in flight, not as lost.

`data_audit()` asks the lab's replicas (the admin API) and repeats the audit until it holds or its time is up;
`audit_views()` is the judgement itself, on the three views.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from chaoslab.clients.admin import AdminClient

MAX_LISTED = 20  # ids listed per problem in a report; the counts are always complete


def _epoch(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit_views(orders: dict[str, Any], payments: dict[str, Any], notifications: dict[str, Any], *,
                now: float, settle_s: float) -> dict[str, Any]:
    """The audit's report: `ok` and, per problem, a count and the first ids."""
    order_items = list(orders.get("items", []))
    payment_items = list(payments.get("items", []))
    note_items = {str(n["event_id"]): n for n in notifications.get("items", [])}

    payments_by_id = {str(p["payment_id"]): p for p in payment_items}
    charges_per_order = Counter(str(p.get("order_ref")) for p in payment_items)
    cutoff = now - settle_s

    problems: dict[str, list[str]] = {
        "missing_payment": [], "payment_mismatch": [], "duplicate_payment": [],
        "missing_notification": [], "duplicate_notification": [], "payment_without_order": [],
    }
    # A charge must belong to an order orders wrote: a confirmed one, or one still pending (its confirmation
    # failed; the customer was told so, and a retry with the same key confirms it). A payment for no order at all
    # is money taken for nothing.
    known = {str(o["id"]) for o in order_items} | {str(i) for i in orders.get("pending", [])}
    pending = {str(i) for i in orders.get("pending", [])}
    for payment in payment_items:
        if str(payment.get("order_ref")) not in known:
            problems["payment_without_order"].append(str(payment.get("payment_id")))
    in_flight = 0
    for order in order_items:
        oid = str(order["id"])
        payment = payments_by_id.get(str(order.get("payment_id") or ""))
        if payment is None:
            problems["missing_payment"].append(oid)
        elif str(payment.get("order_ref")) != oid:
            problems["payment_mismatch"].append(oid)
        if charges_per_order.get(oid, 0) > 1:
            problems["duplicate_payment"].append(oid)
        note = note_items.get(str(order.get("event_id")))
        if note is None:
            if _epoch(order.get("created_at")) > cutoff:
                in_flight += 1
            else:
                problems["missing_notification"].append(oid)
        elif int(note.get("notifications", 0)) != 1:
            problems["duplicate_notification" if int(note.get("notifications", 0)) > 1
                     else "missing_notification"].append(oid)

    report: dict[str, Any] = {
        "ok": not any(problems.values()),
        "orders": len(order_items),
        "payments": len(payment_items),
        "notifications": int(notifications.get("notifications", len(note_items))),
        "in_flight": in_flight,
        "pending_orders": len(pending),
        "charged_pending": sum(1 for p in payment_items if str(p.get("order_ref")) in pending),
        "outbox_unsent": int(orders.get("unsent", 0)),
        # Redeliveries the consumer recognised and dropped: at-least-once delivery working as designed.
        "duplicate_deliveries_dropped": int(notifications.get("duplicates", 0)),
    }
    for name, ids in problems.items():
        report[name] = len(ids)
        if ids:
            report[f"{name}_ids"] = ids[:MAX_LISTED]
    return report


AUDITED = ("orders", "payments", "notifications")


def audit_once(registry: dict[str, Any], settle_s: float) -> dict[str, Any]:
    """The audit of the lab now (ClientError when a service's audit cannot be read)."""
    admin = AdminClient.of(registry)
    views = {s: admin.service_audit(registry, s) for s in AUDITED}
    return audit_views(views["orders"], views["payments"], views["notifications"], now=time.time(),
                       settle_s=settle_s)


def data_audit(registry: dict[str, Any], settle_s: float = 10.0, timeout_s: float = 60.0) -> dict[str, Any]:
    """Every acknowledged order has its payment and its notification, none duplicated. Orders younger than
    `settle_s` may still be in flight; the audit is repeated until it holds with nothing in flight and nothing
    unsent, or `timeout_s` passed. The last report, with "waited_s"."""
    started = time.monotonic()
    while True:
        report = audit_once(registry, settle_s)
        if report["ok"] and report["in_flight"] == 0 and report["outbox_unsent"] == 0:
            break
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(1.0)
    report["waited_s"] = round(time.monotonic() - started, 3)
    return report
