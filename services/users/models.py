"""users' table (its own database) and request bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, MetaData, String, Table

from services.kit.validation import StrictModel

metadata = MetaData()

# The profile's id is the user's id at auth (the token's `sub`): one profile per user, enforced by the primary key,
# which is what makes the create-on-first-access upsert race-safe across replicas.
profiles = Table(
    "profiles",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("address", String(1000), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class ProfilePatch(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=1000)


# -- answers (the public API's contract: services/openapi.py; the fuzzer checks real answers against it) --------
class Profile(BaseModel):
    id: str
    email: str
    name: str
    address: str


class ProfilePage(BaseModel):
    items: list[Profile]
