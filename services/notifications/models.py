"""Notifications' own tables: the notifications and the processed event ids (idempotency). The message it
consumes is services/contract.py's OrderEvent."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, Text

metadata = MetaData()

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_notifications_user_created", "user_id", "created_at"),
)

# Written in the same transaction as the notification: the primary key makes a redelivered or duplicated
# event a no-op (it is acked and counted as a duplicate).
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("notification_id", String(36), nullable=False),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)


# -- answers (the public API's contract: services/openapi.py; the fuzzer checks real answers against it) --------
class Notification(BaseModel):
    id: str
    order_id: str
    event_id: str
    kind: str
    message: str
    created_at: str  # RFC 3339, UTC


class NotificationPage(BaseModel):
    items: list[Notification]
