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
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services import contract
from services.kit import metrics
from services.kit.app import Service
from services.kit.config import env_float, env_int
from services.kit.db import DATABASE, Database
from services.kit.grpc_server import bind, grpc_server
from services.kit.mtls import callers
from services.proto import payments_pb2, payments_pb2_grpc

from .models import metadata, payments

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

    @classmethod
    def from_env(cls) -> Provider:
        return cls(latency_ms=env_float("PROVIDER_LATENCY_MS", 50.0), jitter_ms=env_float("PROVIDER_JITTER_MS", 10.0),
                   concurrency=max(1, env_int("PROVIDER_CONCURRENCY", 8)))

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


log = structlog.get_logger(contract.PAYMENTS.name)
admin_routes = web.RouteTableDef()


class PaymentsServicer(payments_pb2_grpc.PaymentsServicer):
    def __init__(self, db: Database, provider: Provider, replica: str) -> None:
        self.db = db
        self.provider = provider
        self.replica = replica

    async def _find(self, key: str) -> Any:
        return await self.db.first(select(payments).where(payments.c.idempotency_key == key))

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
            async with self.db.session(write=True) as session:
                await session.execute(
                    payments.insert().values(
                        id=payment_id,
                        idempotency_key=key,
                        user_id=request.user_id,
                        order_ref=request.order_ref[:128],
                        amount_cents=request.amount_cents,
                        currency=request.currency,
                        status="captured",
                        replica=self.replica,
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
        log.info(
            "payment captured",
            payment_id=payment_id,
            amount_cents=request.amount_cents,
            user_id=request.user_id,
            order_ref=request.order_ref,
        )
        return payments_pb2.ChargeReply(
            payment_id=payment_id, status="captured", amount_cents=request.amount_cents, replayed=False
        )


class ChargeServer:
    """The gRPC server on GRPC_PORT (shared by the replicas with SO_REUSEPORT), for the replica's life."""

    def __init__(self, servicer: PaymentsServicer, host: str, port: int) -> None:
        self.servicer = servicer
        self.address = f"{host}:{port}"
        self._server: grpc.aio.Server | None = None

    async def lifetime(self, svc: Service) -> AsyncGenerator[None, None]:
        server = grpc_server(svc.faults, options=[
            ("grpc.max_concurrent_streams", 1000),
            # orders pings every 10 s while it has calls open (keepalive); allow that.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ], callers=callers(svc.tls, svc.name, svc.log))
        payments_pb2_grpc.add_PaymentsServicer_to_server(self.servicer, server)
        bind(server, self.address, svc.tls)  # mutual TLS when the replica has an identity
        await server.start()
        self._server = server
        provider = self.servicer.provider
        log.info("grpc serving", address=self.address, provider_concurrency=provider.concurrency,
                 provider_latency_ms=provider.latency_ms)
        yield
        self._server = None
        # Refuse new calls, let in-flight charges finish (bounded), then close.
        await server.stop(grace=5.0)

    async def serving(self) -> bool:
        return self._server is not None


@admin_routes.get("/admin/audit")
async def audit(request: web.Request) -> web.Response:
    p = payments.c
    rows = await request.app[DATABASE].rows(
        select(p.idempotency_key, p.id, p.amount_cents, p.currency, p.user_id, p.order_ref, p.replica)
        .order_by(p.created_at)
        .limit(AUDIT_LIMIT)
    )
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
    return web.json_response({"service": contract.PAYMENTS.name, "count": len(items), "items": items})


SERVICER = web.AppKey("servicer", PaymentsServicer)


def create_service(*, serve_grpc: bool = True) -> Service:
    """The payments service; `serve_grpc=False` opens no gRPC port: the modular monolith (services/monolith) calls
    the servicer, `svc.app[SERVICER]`, in process."""
    svc = Service(contract.PAYMENTS)
    svc.metadata(metadata)
    servicer = PaymentsServicer(svc.admin[DATABASE], Provider.from_env(), svc.config.replica)
    svc.app[SERVICER] = servicer
    if serve_grpc:
        charges = ChargeServer(servicer, svc.config.host, env_int("GRPC_PORT", contract.native_port(svc.name)))
        svc.lifetime(charges.lifetime)
        svc.add_readiness_check("grpc", charges.serving)
    svc.admin.add_routes(admin_routes)
    return svc


def main() -> None:
    create_service().run()
