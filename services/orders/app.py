"""orders: places orders (users over REST, payments over gRPC) and publishes `order.*` events through a
transactional outbox.

POST /orders is idempotent by (user, Idempotency-Key): the order id and the payments idempotency key are both
derived from that pair, so a client retry, a replay and a retry of the gRPC call all land on one payment and one
order. The order and its outbox event are written in one transaction; the kit's outbox relay (services/kit/outbox.py)
on every replica publishes unsent events to RabbitMQ with publisher confirms and marks them sent only after the
confirm. Orders are accepted while the broker is down: the outbox holds the events until it is back.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from opentelemetry import trace
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.contract import ADMIN, ANY_USER, EXCHANGE, ORDER_CREATED, OrderEvent
from services.kit import metrics
from services.kit.app import Service
from services.kit.config import env_float, env_int, upstream_address
from services.kit.db import DATABASE, Database
from services.kit.errors import ApiError
from services.kit.grpc_client import DEFAULT_CHANNELS, GrpcUpstream
from services.kit.http_client import Upstream
from services.kit.outbox import OutboxRelay, outbox_entry
from services.kit.tokens import Principal, authenticated
from services.kit.validation import iso_utc, page, parse_body, query_bool
from services.proto import payments_pb2_grpc

from . import catalogue
from .customers import check_customer, order_failed
from .models import IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_KEY_RE, OrderIn, metadata, orders, outbox
from .payments import Payments, PaymentsFailed

PENDING, CONFIRMED = "pending", "confirmed"  # an order is written pending, and confirmed once it is paid
# Stable namespaces: the order id and event id of one (user, Idempotency-Key) are the same on every replica.
ORDER_NS = uuid.UUID("6f1c1a52-3f0e-4f5e-9a53-8c1d5a0b7e01")
EVENT_NS = uuid.UUID("0b9f3c1e-7d4a-4c8e-b6f2-2e5d9a8c4f10")

USERS = web.AppKey("users", Upstream)
PAYMENTS = web.AppKey("payments", Payments)

tracer = trace.get_tracer("services.orders")
log = structlog.get_logger(contract.ORDERS.name)
routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()


def order_view(order: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": order["id"],
        "user_id": order["user_id"],
        "status": order["status"],
        "total_cents": order["total_cents"],
        "currency": order["currency"],
        "items": order["items"],
        "payment_id": order["payment_id"],
        "created_at": iso_utc(order["created_at"]),
    }


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ApiError(400, "Bad Request", "the Idempotency-Key header is required",
                       errors=[{"field": "Idempotency-Key", "message": "required", "type": "missing"}])
    if len(key) > IDEMPOTENCY_KEY_MAX or not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(400, "Bad Request",
                       f"the Idempotency-Key header must be 1..{IDEMPOTENCY_KEY_MAX} visible ASCII characters",
                       errors=[{"field": "Idempotency-Key", "message": "too long or not visible ASCII",
                                "type": "value"}])
    return key


async def _find(db: Database, user_id: str, key: str) -> Any:
    return await db.first(select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == key))


def _replay(row: Any, request_hash: str) -> web.Response:
    if row.request_hash != request_hash:
        raise ApiError(
            409,
            "Conflict",
            "this Idempotency-Key was used for a different order; use a new key for a new order",
            type="https://chaoslab.dev/problems/idempotency-key-reused",
        )
    return web.json_response(order_view(row._mapping), status=200, headers={"Idempotent-Replayed": "true"})


@routes.post("/orders")
@authenticated(roles=ANY_USER)
async def place(request: web.Request) -> web.Response:
    principal: Principal = request["principal"]
    db = request.app[DATABASE]
    key = _idempotency_key(request)
    body = await parse_body(request, OrderIn)
    asked = [item.model_dump() for item in body.items]
    request_hash = hashlib.sha256(
        json.dumps({"items": asked, "currency": body.currency}, sort_keys=True).encode()
    ).hexdigest()
    items = [{**item, "unit_price_cents": catalogue.price(item["sku"], body.currency)} for item in asked]

    existing = await _find(db, principal.user_id, key)
    if existing is not None and (existing.status == CONFIRMED or existing.request_hash != request_hash):
        return _replay(existing, request_hash)  # the same order again, or 409 for another body with this key

    await check_customer(request.app[USERS], principal)

    order_id = str(uuid.uuid5(ORDER_NS, f"{principal.user_id}\x00{key}"))
    total = sum(i["quantity"] * i["unit_price_cents"] for i in items)
    order = {
        "id": order_id,
        "user_id": principal.user_id,
        "idempotency_key": key,
        "request_hash": request_hash,
        "status": PENDING,
        "total_cents": total,
        "currency": body.currency,
        "items": items,
        "payment_id": "",
        "event_id": str(uuid.uuid5(EVENT_NS, order_id)),
        "created_at": datetime.now(UTC),
    }
    # The order is written (pending) before anything is charged: a database that cannot take it (a full disk)
    # refuses the order before the customer's money moves. Charging first left a payment without an order
    # whenever the write after it failed (found by orders-disk-full).
    if existing is None:
        try:
            async with db.session(write=True) as session:
                await session.execute(orders.insert().values(**order))
        except IntegrityError:
            # A concurrent request with this key wrote it first: confirmed, answer it; still pending, go on (the
            # charge is idempotent by key, and only one of us confirms).
            winner = await _find(db, principal.user_id, key)
            if winner is None:  # pragma: no cover - the unique constraint that failed names a committed row
                raise
            if winner.status == CONFIRMED or winner.request_hash != request_hash:
                return _replay(winner, request_hash)
    try:
        reply = await request.app[PAYMENTS].charge(user_id=principal.user_id, idempotency_key=key, order_id=order_id,
                                                   amount_cents=total, currency=body.currency)
    except PaymentsFailed as exc:
        # The order stays pending: a retry with this key charges again (the same payment, if one was made).
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        raise order_failed(exc.reason, exc.status, exc.title, exc.detail, headers=headers) from None

    order |= {"status": CONFIRMED, "payment_id": reply.payment_id}
    event = OrderEvent(event_id=order["event_id"], type=ORDER_CREATED, order_id=order_id, user_id=principal.user_id,
                       total_cents=total, currency=body.currency, occurred_at=iso_utc(order["created_at"]))
    try:
        async with db.session(write=True) as session:
            confirmed = await session.execute(
                update(orders).where(orders.c.id == order_id, orders.c.status == PENDING)
                .values(status=CONFIRMED, payment_id=reply.payment_id))
            if confirmed.rowcount == 0:  # another request with this key confirmed it meanwhile
                raise IntegrityError("order already confirmed", None, Exception())
            await session.execute(outbox.insert().values(**outbox_entry(
                event_id=event.event_id, routing_key=ORDER_CREATED, payload=event.payload(), order_id=order_id)))
    except IntegrityError:
        winner = await _find(db, principal.user_id, key)
        if winner is None or winner.status != CONFIRMED:  # pragma: no cover - the confirmed row is committed
            raise
        return _replay(winner, request_hash)
    metrics.orders_placed_total.inc()
    log.info("order placed", order_id=order_id, payment_id=reply.payment_id, total_cents=total,
             payment_replayed=reply.replayed)
    # The answer is the order just confirmed; reading it back would cost a session and a statement per order.
    return web.json_response(order_view(order), status=201, headers={"Location": f"/orders/{order_id}"})


@routes.get("/catalogue")
async def list_catalogue(request: web.Request) -> web.Response:
    """What the shop sells, with its prices: public (no token), the same for everyone."""
    return web.json_response(catalogue.view(), headers={"Cache-Control": "public, max-age=60"})


@routes.get("/orders")
@authenticated(roles=ANY_USER)
async def list_orders(request: web.Request) -> web.Response:
    principal: Principal = request["principal"]
    this_page = page(request)
    show_all = query_bool(request, "all")
    if show_all and ADMIN not in principal.roles:
        raise ApiError(403, "Forbidden", "only an admin may list every order (all=true)")
    query = this_page.of(select(orders).where(orders.c.status == CONFIRMED)
                         .order_by(orders.c.created_at.desc(), orders.c.id))
    if not show_all:
        query = query.where(orders.c.user_id == principal.user_id)
    rows = await request.app[DATABASE].rows(query)
    return web.json_response({"items": [order_view(r._mapping) for r in rows]})


@routes.get("/orders/{order_id}")
@authenticated(roles=ANY_USER)
async def get_order(request: web.Request) -> web.Response:
    principal: Principal = request["principal"]
    row = await request.app[DATABASE].first(select(orders).where(orders.c.id == request.match_info["order_id"],
                                                                 orders.c.status == CONFIRMED))
    # Another user's order answers 404, exactly like a missing one: its existence is not revealed.
    if row is None or (row.user_id != principal.user_id and ADMIN not in principal.roles):
        raise ApiError(404, "Not Found", "no such order")
    return web.json_response(order_view(row._mapping))


@admin_routes.get("/admin/audit")
async def audit(request: web.Request) -> web.Response:
    query = (
        select(orders.c.id, orders.c.user_id, orders.c.payment_id, orders.c.event_id, orders.c.total_cents,
               orders.c.created_at, outbox.c.sent_at)
        .select_from(orders.outerjoin(outbox, outbox.c.event_id == orders.c.event_id))
        .where(orders.c.status == CONFIRMED)
        .order_by(orders.c.created_at)
    )
    rows = await request.app[DATABASE].rows(query)
    # Orders written but never confirmed (their charge failed, or the confirmation could not be written): no
    # customer was told they exist; the audit tells a payment for one of them from a payment for no order at all.
    pending = [r.id for r in await request.app[DATABASE].rows(select(orders.c.id).where(orders.c.status == PENDING))]
    items = [
        {"id": r.id, "user_id": r.user_id, "payment_id": r.payment_id, "event_id": r.event_id,
         "total_cents": r.total_cents, "created_at": iso_utc(r.created_at), "sent": r.sent_at is not None}
        for r in rows
    ]
    unsent = sum(1 for i in items if not i["sent"])
    return web.json_response({"service": contract.ORDERS.name, "count": len(items), "unsent": unsent, "items": items,
                              "pending": pending})


def create_service() -> Service:
    svc = Service(contract.ORDERS)
    svc.metadata(metadata)
    payments = GrpcUpstream(
        contract.PAYMENTS.name,
        upstream_address(contract.PAYMENTS),
        payments_pb2_grpc.PaymentsStub,
        svc.faults,
        deadline_s=env_float("PAYMENTS_DEADLINE_S", 2.0),
        retries=max(0, env_int("PAYMENTS_RETRIES", 2)),
        fail_max=env_int("BREAKER_FAIL_MAX", 5),
        reset_s=env_float("BREAKER_RESET_S", 5.0),
        channels=max(1, env_int("PAYMENTS_CHANNELS", DEFAULT_CHANNELS)),
        identity=svc.tls,
    )
    relay = OutboxRelay(svc.app[DATABASE], outbox, svc.config.amqp_url, exchange=EXCHANGE, app_id=svc.name,
                        tracer=tracer, log=svc.log, poll_s=env_float("OUTBOX_POLL_S", 0.2),
                        identity=svc.tls)
    svc.app[USERS] = svc.upstream(contract.USERS, retries=2)
    svc.app[PAYMENTS] = Payments(payments)
    svc.lifetime(payments.lifetime)  # grpc.aio channels belong to the running loop: they open in it
    svc.lifetime(relay.lifetime)

    async def broker_connected() -> bool:
        return relay.broker_connected

    # Not required: while the broker is down, orders still accepts orders (the outbox holds their events and
    # the relay publishes them when it is back). Making readiness depend on the broker would take every orders
    # replica out of service during a broker outage and turn a delay in notifications into lost sales.
    svc.add_readiness_check("broker", broker_connected, required=False)
    svc.app.add_routes(routes)
    svc.admin.add_routes(admin_routes)
    return svc


def main() -> None:
    create_service().run()
