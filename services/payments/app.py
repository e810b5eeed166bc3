"""payments: `payments.v1.Payments/Charge` over gRPC, idempotent by key, in front of a simulated provider.

The provider is I/O-bound on purpose: every charge waits PROVIDER_LATENCY_MS +- PROVIDER_JITTER_MS (asyncio.sleep)
and at most PROVIDER_CONCURRENCY charges run at once per replica; the others queue on a semaphore until their
gRPC deadline. So one replica's capacity is about PROVIDER_CONCURRENCY / latency, and it grows with replicas
(they share GRPC_PORT with SO_REUSEPORT).

Idempotency: a key that has a payment returns it with replayed=true. A new key is charged at the provider and
then inserted; the unique key column decides between concurrent duplicates and the loser answers with the
winner's payment (replayed=true). The simulated provider is itself idempotent by key, as real ones are
(an Idempotency-Key to Stripe or Adyen), so the loser's provider call does not charge the card twice.

The kit serves health, metrics and the admin API on the replica's admin port; there is no public HTTP port.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.kit import metrics
from services.kit.app import Service
from services.kit.config import env_float, env_int
from services.kit.grpc_server import grpc_server
from services.proto import payments_pb2, payments_pb2_grpc

from .models import metadata, payments

DEFAULT_GRPC_PORT = 18004
MAX_KEY_LEN = 128
AUDIT_LIMIT = 100_000


class Provider:
    """The simulated payment provider: latency with jitter, and a concurrency limit per replica."""

    def __init__(self, latency_ms: float, jitter_ms: float, concurrency: int) -> None:
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        metrics.payments_concurrency_limit.set(concurrency)

    async def charge(self) -> None:
        # Waiting for a slot is bounded by the caller's gRPC deadline: grpc.aio cancels this task then.
        async with self._slots:
            metrics.payments_inflight.inc()
            try:
                delay_ms = self.latency_ms + random.uniform(-self.jitter_ms, self.jitter_ms)
                await asyncio.sleep(max(0.0, delay_ms) / 1000.0)
            finally:
                metrics.payments_inflight.dec()


def _reply(row: Any, *, replayed: bool) -> payments_pb2.ChargeReply:
    return payments_pb2.ChargeReply(
        payment_id=row.id, status=row.status, amount_cents=row.amount_cents, replayed=replayed
    )


class PaymentsServicer(payments_pb2_grpc.PaymentsServicer):
    def __init__(self, svc: Service, provider: Provider) -> None:
        self.svc = svc
        self.provider = provider

    async def _find(self, key: str) -> Any:
        async with self.svc.db.session() as session:
            result = await session.execute(select(payments).where(payments.c.idempotency_key == key))
            return result.first()

    async def Charge(  # noqa: N802 - the generated servicer's method name
        self, request: payments_pb2.ChargeRequest, context: grpc.aio.ServicerContext
    ) -> payments_pb2.ChargeReply:
        key = request.idempotency_key
        if not key or len(key) > MAX_KEY_LEN:
            metrics.payments_processed_total.labels("rejected").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"idempotency_key must be 1..{MAX_KEY_LEN} chars")
        if request.amount_cents < 0 or len(request.currency) != 3 or not request.user_id:
            metrics.payments_processed_total.labels("rejected").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "amount_cents >= 0, currency and user_id needed")
        try:
            return await self._charge(request, key)
        except Exception:
            # e.g. the database is unavailable; grpc answers UNKNOWN and the caller retries or gives up
            metrics.payments_processed_total.labels("failed").inc()
            raise

    async def _charge(self, request: payments_pb2.ChargeRequest, key: str) -> payments_pb2.ChargeReply:
        existing = await self._find(key)
        if existing is not None:
            metrics.payments_processed_total.labels("replayed").inc()
            return _reply(existing, replayed=True)

        await self.provider.charge()

        payment_id = str(uuid.uuid4())
        try:
            async with self.svc.db.session(write=True) as session:
                await session.execute(
                    payments.insert().values(
                        id=payment_id,
                        idempotency_key=key,
                        user_id=request.user_id,
                        order_ref=request.order_ref[:128],
                        amount_cents=request.amount_cents,
                        currency=request.currency,
                        status="captured",
                        replica=self.svc.config.replica,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            # A concurrent duplicate won the unique key: answer with its payment.
            winner = await self._find(key)
            if winner is None:  # pragma: no cover - the constraint that failed names a row that exists
                raise
            metrics.payments_processed_total.labels("replayed").inc()
            return _reply(winner, replayed=True)
        metrics.payments_processed_total.labels("charged").inc()
        self.svc.log.info(
            "payment captured",
            payment_id=payment_id,
            amount_cents=request.amount_cents,
            user_id=request.user_id,
            order_ref=request.order_ref,
        )
        return payments_pb2.ChargeReply(
            payment_id=payment_id, status="captured", amount_cents=request.amount_cents, replayed=False
        )


def build() -> Service:
    svc = Service("payments", DEFAULT_GRPC_PORT, uses_db=True, public_http=False)
    svc.metadata(metadata)
    grpc_port = env_int("GRPC_PORT", DEFAULT_GRPC_PORT)
    provider = Provider(
        latency_ms=env_float("PROVIDER_LATENCY_MS", 50.0),
        jitter_ms=env_float("PROVIDER_JITTER_MS", 10.0),
        concurrency=max(1, env_int("PROVIDER_CONCURRENCY", 8)),
    )
    state: dict[str, Any] = {}

    async def start_grpc(svc: Service) -> None:
        server = grpc_server(svc.faults, options=[
            ("grpc.max_concurrent_streams", 1000),
            # orders pings every 10 s while it has calls open (keepalive); allow that.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ])
        payments_pb2_grpc.add_PaymentsServicer_to_server(PaymentsServicer(svc, provider), server)
        address = f"{svc.config.host}:{grpc_port}"
        if server.add_insecure_port(address) == 0:
            raise RuntimeError(f"cannot bind the gRPC port {address}")
        await server.start()
        state["server"] = server
        svc.log.info(
            "grpc serving",
            address=address,
            provider_concurrency=provider.concurrency,
            provider_latency_ms=provider.latency_ms,
        )

    async def stop_grpc(svc: Service) -> None:
        server = state.pop("server", None)
        if server is not None:
            # Refuse new calls, let in-flight charges finish (bounded), then close.
            await server.stop(grace=5.0)

    async def grpc_ready() -> bool:
        return "server" in state

    async def audit(request: web.Request) -> web.Response:
        async with svc.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        payments.c.idempotency_key,
                        payments.c.id,
                        payments.c.amount_cents,
                        payments.c.currency,
                        payments.c.user_id,
                        payments.c.order_ref,
                        payments.c.replica,
                    )
                    .order_by(payments.c.created_at)
                    .limit(AUDIT_LIMIT)
                )
            ).all()
        items = [
            {
                "key": r.idempotency_key,
                "payment_id": r.id,
                "amount": r.amount_cents,
                "currency": r.currency,
                "user_id": r.user_id,
                "order_ref": r.order_ref,
                "replica": r.replica,
            }
            for r in rows
        ]
        return web.json_response({"service": "payments", "count": len(items), "items": items})

    svc.on_startup(start_grpc)
    svc.on_shutdown(stop_grpc)
    svc.add_readiness_check("grpc", grpc_ready)
    svc.admin.router.add_get("/admin/audit", audit)
    return svc


def main() -> None:
    build().run()
