"""Payments' own tables: one row per idempotency key."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("id", String(36), primary_key=True),
    # The unique key is what makes Charge idempotent: concurrent duplicates race on this constraint and
    # exactly one row wins; the loser returns the winner's payment as a replay.
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("replica", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
