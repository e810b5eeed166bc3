"""Orders' own tables: orders and the transactional outbox, written in one transaction."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.kit.validation import StrictModel

from . import catalogue

# The Idempotency-Key header: 1..128 visible ASCII characters (what RFC 9110 allows in a token, plus the rest of
# VCHAR), so keys compare byte for byte on every replica and fit the column. The contract (services/openapi.py)
# publishes the same rule.
IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"
IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("idempotency_key", String(IDEMPOTENCY_KEY_MAX), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("items", JSON, nullable=False),
    Column("payment_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # One order per (user, Idempotency-Key): concurrent requests with one key race here and one wins.
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_key"),
    Index("ix_orders_user_created", "user_id", "created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("routing_key", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the message body, JSON, exactly as published
    Column("headers", JSON, nullable=False),  # W3C trace context of the request that placed the order
    Column("created_at", Float, nullable=False),  # unix seconds; publishing order
    # A relay claims a batch by moving claimed_until into the future (a lease); a relay that dies leaves
    # its claim to expire and another replica takes the events over.
    Column("claimed_until", Float, nullable=False, default=0.0),
    Column("claim_token", String(36), nullable=True),
    Column("attempts", BigInteger, nullable=False, default=0),
    Column("sent_at", Float, nullable=True),  # set only after the broker confirmed the publish
    Index("ix_outbox_unsent", "sent_at", "claimed_until"),
)


class OrderItem(StrictModel):
    """One line of an order: a SKU of the catalogue and how many. No price: the catalogue has it."""

    # one of the catalogue's SKUs (an enum in the API's contract: GET /api/catalogue lists them with their prices)
    sku: Literal[catalogue.SKUS]  # type: ignore[valid-type]
    quantity: int = Field(ge=1, le=100)


class OrderIn(StrictModel):
    items: list[OrderItem] = Field(min_length=1, max_length=50)
    # Literal[tuple] is Literal of each member: the catalogue's list is the one home of the currencies
    currency: Literal[catalogue.CURRENCIES]  # type: ignore[valid-type]


# -- answers (the public API's contract: services/openapi.py; the fuzzer checks real answers against it) --------
class OrderLine(BaseModel):
    sku: str
    quantity: int
    unit_price_cents: int  # the catalogue's price when the order was placed


class Order(BaseModel):
    id: str
    user_id: str
    status: Literal["confirmed"]
    total_cents: int
    currency: str
    items: list[OrderLine]
    payment_id: str
    created_at: str  # RFC 3339, UTC


class OrderPage(BaseModel):
    items: list[Order]


class Product(BaseModel):
    sku: str
    name: str
    prices: dict[str, int]  # currency -> cents


class Catalogue(BaseModel):
    currencies: list[str]
    items: list[Product]
