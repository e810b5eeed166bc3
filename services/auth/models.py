"""auth's tables (its own database) and request bodies."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import BigInteger, Column, DateTime, Float, Index, MetaData, String, Table, Text
from zxcvbn import zxcvbn

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

# One row per refresh token issued: a login starts a family, each refresh uses its token up and issues the next one
# in the family. A token used a second time means it was stolen (or a client is broken): its whole family is
# revoked, so neither the thief nor the victim can refresh any more (OAuth 2.0 Security BCP, refresh token rotation).
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(32), primary_key=True),
    Column("family", String(32), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Index("ix_refresh_tokens_family", "family"),
)

# Failed logins per account ("account:<email>") and per client ("client:<address>"), in the database every replica
# shares, so that replicas cannot be played against each other.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", BigInteger, nullable=False),
    Column("window_started", Float, nullable=False),
    Column("blocked_until", Float, nullable=False),
)

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not auth's business.
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# The password policy (NIST SP 800-63B): long enough, and not guessable. zxcvbn estimates how many guesses a
# password takes against its lists of common passwords, words, names, keyboard patterns and the user's own details;
# score 3 ("safely unguessable: moderate protection from offline slow-hash scenario", >= 10^8 guesses) or more.
MIN_PASSWORD_LENGTH = 10
MIN_PASSWORD_SCORE = 3


def normalise_email(value: str) -> str:
    return value.strip().lower()


def weak_password(password: str, email: str = "", name: str = "") -> str | None:
    """Why `password` is refused, or None: the policy of every account, the bootstrap admin's included."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    # zxcvbn takes at most 72 characters (its matching is quadratic): the first 72 decide
    strength = zxcvbn(password[:72], user_inputs=[email, email.split("@")[0], name])
    if strength["score"] < MIN_PASSWORD_SCORE:
        hint = strength["feedback"].get("warning") or "add words or characters that are not a common pattern"
        return f"the password is too easy to guess ({hint})"
    return None


def _printable(value: str, what: str) -> str:
    if any(not ch.isprintable() for ch in value):
        raise ValueError(f"{what} must not contain control characters")
    return value


class RegisterBody(StrictModel):
    # a password is taken exactly as typed: the kit's default whitespace stripping must not touch it
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    # validated after email and name: the password must not be guessable from them either
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = _printable(normalise_email(v), "an email address")
        if not _EMAIL_RE.match(v):
            raise ValueError("not a valid email address")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _printable(v.strip(), "a name")

    @field_validator("password")
    @classmethod
    def _strong_password(cls, v: str, info: ValidationInfo) -> str:
        problem = weak_password(v, str(info.data.get("email") or ""), str(info.data.get("name") or ""))
        if problem:
            raise ValueError(problem)
        return v


class LoginBody(StrictModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(max_length=320)
    password: str = Field(max_length=256)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return _printable(normalise_email(v), "an email address")


class RefreshBody(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=8192)


# -- answers (the public API's contract: services/openapi.py; the fuzzer checks real answers against it) --------
class Registered(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str  # use it once: a refresh answers the next pair, and a second use revokes the family
    token_type: Literal["Bearer"]
    expires_in: int  # seconds the access token is valid


class Jwk(BaseModel):
    kty: str
    n: str
    e: str
    kid: str
    alg: str
    use: str


class Jwks(BaseModel):
    keys: list[Jwk]
