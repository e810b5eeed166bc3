"""orders' side of payments: the charge an order makes, and what each way of failing means for the order.

The calls themselves go through the kit's gRPC client (services/kit/grpc_client.py): channels, deadline, retries,
breaker, metrics and faults are the kit's; what is orders' own is the request and the answer the client gets.
"""

from __future__ import annotations

import hashlib

import grpc
import structlog

from services import contract
from services.kit.grpc_client import RETRYABLE_CODES, GrpcUpstream
from services.kit.resilience import CircuitOpen
from services.proto import payments_pb2, payments_pb2_grpc

log = structlog.get_logger(contract.ORDERS.name)


def payments_key(user_id: str, idempotency_key: str) -> str:
    """The payments idempotency key of an order request: stable, so no retry or replay charges twice."""
    return hashlib.sha256(f"order\x00{user_id}\x00{idempotency_key}".encode()).hexdigest()


class PaymentsFailed(Exception):
    """The order cannot be charged: the answer orders gives (status, title, detail) and the orders_failed_total
    reason."""

    def __init__(self, status: int, title: str, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.reason = status, title, detail, reason


class Payments:
    def __init__(self, upstream: GrpcUpstream[payments_pb2_grpc.PaymentsStub]) -> None:
        self.upstream = upstream

    async def charge(self, *, user_id: str, idempotency_key: str, order_id: str, amount_cents: int,
                     currency: str) -> payments_pb2.ChargeReply:
        request = payments_pb2.ChargeRequest(
            idempotency_key=payments_key(user_id, idempotency_key),
            user_id=user_id,
            order_ref=order_id,
            amount_cents=amount_cents,
            currency=currency,
        )
        try:
            # Retried: Charge is idempotent by key, so a repeated attempt lands on the same payment.
            return await self.upstream.call(lambda stub: stub.Charge, request, idempotent=True)
        except CircuitOpen:
            raise PaymentsFailed(
                503, "Service Unavailable", "payments is unavailable (circuit open)", "payments_circuit_open"
            ) from None
        except grpc.aio.AioRpcError as exc:
            raise _failed(exc) from None


def _failed(exc: grpc.aio.AioRpcError) -> PaymentsFailed:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PaymentsFailed(504, "Gateway Timeout", "payments did not answer in time", "payments_timeout")
    if code in RETRYABLE_CODES:
        return PaymentsFailed(503, "Service Unavailable", f"payments is unavailable: {code.name}",
                              "payments_unavailable")
    # The code only: gRPC's details can carry the server's exception text or an address, which the client of the
    # shop has no business reading (orders logs the whole failure).
    log.warning("payments failed", code=code.name, details=exc.details())
    return PaymentsFailed(502, "Bad Gateway", f"payments failed: {code.name}", "payments_error")
