"""orders: places orders (users over REST, payments over gRPC) and publishes `order.*` events through a
transactional outbox.

POST /orders is idempotent by (user, Idempotency-Key): the order id and the payments idempotency key are both
derived from that pair, so a client retry, a replay and a retry of the gRPC call all land on one payment and one
order. The order and its outbox event are written in one transaction; a relay on every replica publishes unsent
events to RabbitMQ with publisher confirms and marks them sent only after the confirm. Orders are accepted while
the broker is down: the outbox holds the events until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aio_pika
from aiohttp import web
from opentelemetry import trace
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services import contract
from services.kit import metrics
from services.kit.app import Service
from services.kit.bus import EXCHANGE, connect_broker, extract_trace_context, inject_trace_headers
from services.kit.config import env_float, env_int, upstream_address
from services.kit.errors import ApiError
from services.kit.grpc_client import DEFAULT_CHANNELS, GrpcUpstream
from services.kit.http_client import UpstreamError
from services.kit.tokens import Principal, authenticated
from services.kit.tracing import untraced
from services.kit.validation import iso_utc, parse_body, query_int
from services.proto import payments_pb2_grpc

from .models import OrderIn, metadata, orders, outbox
from .payments import Payments, PaymentsFailed

ANY_USER = ("customer", "admin")
MAX_KEY_LEN = 128
MAX_PAGE = 500
# Stable namespaces: the order id and event id of one (user, Idempotency-Key) are the same on every replica.
ORDER_NS = uuid.UUID("6f1c1a52-3f0e-4f5e-9a53-8c1d5a0b7e01")
EVENT_NS = uuid.UUID("0b9f3c1e-7d4a-4c8e-b6f2-2e5d9a8c4f10")

tracer = trace.get_tracer("services.orders")




def order_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "status": row.status,
        "total_cents": row.total_cents,
        "currency": row.currency,
        "items": row.items,
        "payment_id": row.payment_id,
        "created_at": iso_utc(row.created_at),
    }


class OutboxRelay:
    """Publishes unsent outbox events. Every replica runs one; a batch is claimed with a lease
    (UPDATE ... WHERE claimed_until < now, with FOR UPDATE SKIP LOCKED on PostgreSQL) so replicas never publish
    the same event concurrently, and a relay that dies leaves its claim to expire. An event is marked sent only
    after the broker confirmed it; a crash between confirm and mark republishes it (at least once), and
    notifications drops the duplicate by event id."""

    def __init__(self, svc: Service, *, poll_s: float, batch: int = 100, lease_s: float = 10.0) -> None:
        self.svc = svc
        self.poll_s = poll_s
        self.batch = batch
        self.lease_s = lease_s
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.exchange: aio_pika.abc.AbstractExchange | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    @property
    def broker_connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed and self.channel is not None

    async def _ensure_broker(self) -> aio_pika.abc.AbstractExchange:
        if self.exchange is not None and self.channel is not None and not self.channel.is_closed:
            return self.exchange
        await self._drop_broker()
        self.connection = await connect_broker(self.svc.config.amqp_url)
        # Returned (unroutable) messages raise: an event is not "sent" until a queue has it.
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await self.channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        self.svc.log.info("outbox relay connected to the broker")
        return self.exchange

    async def _drop_broker(self) -> None:
        connection, self.connection, self.channel, self.exchange = self.connection, None, None, None
        if connection is not None:
            # It may be broken already; we only make sure it is gone.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)

    async def _claim(self) -> list[Any]:
        db = self.svc.db
        now = time.time()
        token = str(uuid.uuid4())
        due = (
            select(outbox.c.event_id)
            .where(outbox.c.sent_at.is_(None), outbox.c.claimed_until < now)
            .order_by(outbox.c.created_at)
            .limit(self.batch)
        )
        if not db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        # Polls are housekeeping: untraced, or every empty poll would be a trace (the publish spans join the orders').
        with untraced():
            async with db.session(write=True) as session:
                result = await session.execute(
                    update(outbox)
                    .where(outbox.c.event_id.in_(due.scalar_subquery()), outbox.c.sent_at.is_(None))
                    .values(claimed_until=now + self.lease_s, claim_token=token, attempts=outbox.c.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 0:
                    return []
                rows = await session.execute(
                    select(outbox).where(outbox.c.claim_token == token).order_by(outbox.c.created_at)
                )
                return list(rows.all())

    async def _release(self, event_ids: list[str]) -> None:
        if not event_ids:
            return
        with untraced():
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.event_id.in_(event_ids), outbox.c.sent_at.is_(None))
                    .values(claimed_until=0.0, claim_token=None)
                )

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: Any) -> None:
        parent = extract_trace_context(row.headers)
        with tracer.start_as_current_span(
            f"{EXCHANGE} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": EXCHANGE,
                "messaging.rabbitmq.destination.routing_key": row.routing_key,
                "messaging.message.id": row.event_id,
            },
        ):
            message = aio_pika.Message(
                body=row.payload.encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=row.event_id,
                type=row.routing_key,
                timestamp=datetime.now(UTC),
                app_id="orders",
                headers=inject_trace_headers({}),
            )
            started = time.perf_counter()
            await asyncio.wait_for(exchange.publish(message, routing_key=row.routing_key, mandatory=True), 10.0)
            metrics.outbox_publish_duration_seconds.observe(time.perf_counter() - started)

    async def pump(self) -> int:
        """Claim one batch and publish it; returns how many events were confirmed."""
        exchange = await self._ensure_broker()  # before claiming: a broker outage claims nothing
        rows = await self._claim()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(exchange, r) for r in rows), return_exceptions=True)
        confirmed = [r.event_id for r, res in zip(rows, results, strict=True) if res is None]
        failed = [(r.event_id, res) for r, res in zip(rows, results, strict=True) if res is not None]
        if confirmed:
            with untraced():
                async with self.svc.db.session(write=True) as session:
                    await session.execute(
                        update(outbox).where(outbox.c.event_id.in_(confirmed)).values(sent_at=time.time())
                    )
            metrics.outbox_published_total.inc(len(confirmed))
        if failed:
            await self._release([eid for eid, _ in failed])
            first = failed[0][1]
            if isinstance(first, asyncio.CancelledError):
                raise first
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not confirmed: {first!r}") from first
        return len(confirmed)

    async def backlog(self) -> int:
        with untraced():
            async with self.svc.db.session() as session:
                query = select(func.count()).where(outbox.c.sent_at.is_(None))
                return int((await session.execute(query)).scalar_one())

    async def run(self, svc: Service) -> None:
        backoff = 0.2
        try:
            while not self._stopping.is_set():
                try:
                    published = await self.pump()
                    backoff = 0.2
                    if published:
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - broker or database trouble: retry with backoff
                    await self._drop_broker()
                    svc.log.warning("outbox relay: publish failed, retrying", error=repr(exc), backoff_s=backoff)
                    await self._sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, 5.0)
                    continue
                await self._sleep(self.poll_s)
        finally:
            await self._drop_broker()
            self._stopped.set()

    async def report_backlog(self, svc: Service) -> None:
        """outbox_backlog, refreshed every second whatever the relay is doing (it may be backing off)."""
        while True:
            try:
                metrics.outbox_backlog.set(await self.backlog())
            except Exception as exc:  # noqa: BLE001 - the database check reports this; keep the last value
                svc.log.debug("outbox backlog unknown", error=repr(exc))
            await asyncio.sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        """Finish the batch in hand, then stop (a graceful shutdown publishes nothing twice)."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), 5.0)


class Orders:
    def __init__(self, svc: Service, payments: Payments) -> None:
        self.svc = svc
        self.payments = payments
        self.users = svc.upstream(contract.USERS, retries=2)

    async def _find(self, user_id: str, key: str) -> Any:
        async with self.svc.db.session() as session:
            result = await session.execute(
                select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == key)
            )
            return result.first()

    def _replay(self, row: Any, request_hash: str) -> web.Response:
        if row.request_hash != request_hash:
            raise ApiError(
                409,
                "Conflict",
                "this Idempotency-Key was used for a different order; use a new key for a new order",
                type="https://chaoslab.dev/problems/idempotency-key-reused",
            )
        return web.json_response(order_view(row), status=200, headers={"Idempotent-Replayed": "true"})

    def _fail(self, reason: str, status: int, title: str, detail: str, **extra: Any) -> ApiError:
        metrics.orders_failed_total.labels(reason).inc()
        self.svc.log.warning("order failed", reason=reason, status=status, detail=detail)
        return ApiError(status, title, detail, **extra)

    async def _check_user(self, principal: Principal) -> None:
        try:
            status, _ = await self.users.request(
                "GET", "/users/me", headers={"Authorization": f"Bearer {principal.token}"}, idempotent=True
            )
        except UpstreamError as exc:
            reason = "users_circuit_open" if exc.reason == "circuit_open" else "users_unavailable"
            metrics.orders_failed_total.labels(reason).inc()
            raise
        if status == 200:
            return
        if status in (401, 403, 404):
            raise self._fail("user_rejected", 403, "Forbidden", f"users does not know this user ({status})")
        raise self._fail("users_error", 502, "Bad Gateway", f"users answered {status}")

    async def place(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise ApiError(
                400,
                "Bad Request",
                "the Idempotency-Key header is required",
                errors=[{"field": "Idempotency-Key", "message": "required", "type": "missing"}],
            )
        if len(key) > MAX_KEY_LEN or not key.isprintable():
            raise ApiError(
                400,
                "Bad Request",
                f"the Idempotency-Key header must be 1..{MAX_KEY_LEN} printable characters",
                errors=[{"field": "Idempotency-Key", "message": "too long or not printable", "type": "value"}],
            )
        body = await parse_body(request, OrderIn)
        items = [item.model_dump() for item in body.items]
        request_hash = hashlib.sha256(
            json.dumps({"items": items, "currency": body.currency}, sort_keys=True).encode()
        ).hexdigest()

        existing = await self._find(principal.user_id, key)
        if existing is not None:
            return self._replay(existing, request_hash)

        await self._check_user(principal)

        order_id = str(uuid.uuid5(ORDER_NS, f"{principal.user_id}\x00{key}"))
        total = sum(i["quantity"] * i["unit_price_cents"] for i in items)
        try:
            reply = await self.payments.charge(user_id=principal.user_id, idempotency_key=key, order_id=order_id,
                                               amount_cents=total, currency=body.currency)
        except PaymentsFailed as exc:
            headers = {"Retry-After": "1"} if exc.status == 503 else None
            raise self._fail(exc.reason, exc.status, exc.title, exc.detail, headers=headers) from None

        event_id = str(uuid.uuid5(EVENT_NS, order_id))
        now = datetime.now(UTC)
        event = {
            "event_id": event_id,
            "type": "order.created",
            "order_id": order_id,
            "user_id": principal.user_id,
            "total_cents": total,
            "currency": body.currency,
            "occurred_at": iso_utc(now),
        }
        order = {
            "id": order_id,
            "user_id": principal.user_id,
            "idempotency_key": key,
            "request_hash": request_hash,
            "status": "confirmed",
            "total_cents": total,
            "currency": body.currency,
            "items": items,
            "payment_id": reply.payment_id,
            "event_id": event_id,
            "created_at": now,
        }
        try:
            async with self.svc.db.session(write=True) as session:
                await session.execute(orders.insert().values(**order))
                await session.execute(
                    outbox.insert().values(
                        event_id=event_id,
                        order_id=order_id,
                        routing_key="order.created",
                        payload=json.dumps(event, separators=(",", ":")),
                        headers=inject_trace_headers({}),
                        created_at=time.time(),
                        claimed_until=0.0,
                        attempts=0,
                    )
                )
        except IntegrityError:
            # A concurrent request with this key (on this replica or another) stored the order first.
            winner = await self._find(principal.user_id, key)
            if winner is None:  # pragma: no cover - the unique constraint that failed names a committed row
                raise
            return self._replay(winner, request_hash)
        metrics.orders_placed_total.inc()
        self.svc.log.info(
            "order placed",
            order_id=order_id,
            payment_id=reply.payment_id,
            total_cents=total,
            payment_replayed=reply.replayed,
        )
        # The answer is the row just committed; reading it back would cost a session and a statement per order.
        return web.json_response(order_view(SimpleNamespace(**order)), status=201,
                                 headers={"Location": f"/orders/{order_id}"})

    async def list(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        offset = query_int(request, "offset", 0, 0, 10**9)
        show_all = request.query.get("all", "").lower() in ("1", "true", "yes")
        if show_all and "admin" not in principal.roles:
            raise ApiError(403, "Forbidden", "only an admin may list every order (all=true)")
        query = select(orders).order_by(orders.c.created_at.desc(), orders.c.id).limit(limit).offset(offset)
        if not show_all:
            query = query.where(orders.c.user_id == principal.user_id)
        async with self.svc.db.session() as session:
            rows = (await session.execute(query)).all()
        return web.json_response({"items": [order_view(r) for r in rows]})

    async def get(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        order_id = request.match_info["order_id"]
        async with self.svc.db.session() as session:
            row = (await session.execute(select(orders).where(orders.c.id == order_id))).first()
        # Another user's order answers 404, exactly like a missing one: its existence is not revealed.
        if row is None or (row.user_id != principal.user_id and "admin" not in principal.roles):
            raise ApiError(404, "Not Found", "no such order")
        return web.json_response(order_view(row))

    async def audit(self, request: web.Request) -> web.Response:
        async with self.svc.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        orders.c.id,
                        orders.c.user_id,
                        orders.c.payment_id,
                        orders.c.event_id,
                        orders.c.total_cents,
                        orders.c.created_at,
                        outbox.c.sent_at,
                    )
                    .select_from(orders.outerjoin(outbox, outbox.c.event_id == orders.c.event_id))
                    .order_by(orders.c.created_at)
                )
            ).all()
        items = [
            {
                "id": r.id,
                "user_id": r.user_id,
                "payment_id": r.payment_id,
                "event_id": r.event_id,
                "total_cents": r.total_cents,
                "created_at": iso_utc(r.created_at),
                "sent": r.sent_at is not None,
            }
            for r in rows
        ]
        unsent = sum(1 for i in items if not i["sent"])
        return web.json_response({"service": "orders", "count": len(items), "unsent": unsent, "items": items})




def create_service() -> Service:
    svc = Service(contract.ORDERS)
    svc.metadata(metadata)
    payments_upstream = GrpcUpstream(
        "payments",
        upstream_address(contract.PAYMENTS),
        payments_pb2_grpc.PaymentsStub,
        svc.faults,
        deadline_s=env_float("PAYMENTS_DEADLINE_S", 2.0),
        retries=max(0, env_int("PAYMENTS_RETRIES", 2)),
        fail_max=env_int("BREAKER_FAIL_MAX", 5),
        reset_s=env_float("BREAKER_RESET_S", 5.0),
        channels=max(1, env_int("PAYMENTS_CHANNELS", DEFAULT_CHANNELS)),
    )
    payments = Payments(payments_upstream)
    relay = OutboxRelay(svc, poll_s=env_float("OUTBOX_POLL_S", 0.2))
    handlers = Orders(svc, payments)

    async def stop_relay(svc: Service) -> AsyncGenerator[None, None]:
        yield
        await relay.stop()

    async def broker_check() -> bool:
        return relay.broker_connected

    r = svc.app.router
    r.add_post("/orders", authenticated(roles=ANY_USER)(handlers.place))
    r.add_get("/orders", authenticated(roles=ANY_USER)(handlers.list))
    r.add_get("/orders/{order_id}", authenticated(roles=ANY_USER)(handlers.get))
    svc.admin.router.add_get("/admin/audit", handlers.audit)
    svc.lifetime(payments_upstream.lifetime)
    svc.background(relay.run)
    svc.background(relay.report_backlog)
    svc.lifetime(stop_relay)  # closes before the relay's task is cancelled: it finishes the batch in hand
    # Not required: while the broker is down, orders still accepts orders (the outbox holds their events and
    # the relay publishes them when it is back). Making readiness depend on the broker would take every orders
    # replica out of service during a broker outage and turn a delay in notifications into lost sales.
    svc.add_readiness_check("broker", broker_check, required=False)
    return svc


def main() -> None:
    create_service().run()
