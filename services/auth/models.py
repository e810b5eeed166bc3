"""auth's tables (its own database) and request bodies."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text

from services.kit.validation import StrictModel

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    # stored lower-cased; the unique index is what makes a concurrent double registration a 409, not a duplicate
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", Text, nullable=False),
    Column("roles", String(200), nullable=False),  # comma-separated, e.g. "customer" or "admin"
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per signing key. `slot` is unique: the first replica to insert slot "current" wins the race on a fresh
# database and every replica (and every restart) then reads the winner back and signs with it.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("slot", String(16), nullable=False, unique=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not auth's business.
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(value: str) -> str:
    return value.strip().lower()


class RegisterBody(StrictModel):
    # a password is taken exactly as typed: the kit's default whitespace stripping must not touch it
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(max_length=320)
    password: str = Field(min_length=8, max_length=256)
    name: str = Field(default="", max_length=200)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = normalise_email(v)
        if not _EMAIL_RE.match(v):
            raise ValueError("not a valid email address")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return v.strip()


class LoginBody(StrictModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(max_length=320)
    password: str = Field(max_length=256)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v)


class RefreshBody(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=8192)
