"""Requests parsed strictly: JSON bodies (malformed JSON, wrong types and unknown fields are 400s with details),
integer query parameters and pages (limit/offset) within bounds, else a 400 naming the parameter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Select

from services.kit.errors import ApiError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if not raw:
        raise ApiError(400, "Bad Request", "a JSON body is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Bad Request", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Bad Request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ApiError(400, "Bad Request", "the body failed validation", errors=errors) from None


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; a 400 problem naming it otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value: int | None = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ApiError(
            400,
            "Bad Request",
            f"query parameter {name} must be an integer from {lo} to {hi}",
            errors=[{"field": name, "message": f"an integer from {lo} to {hi}", "type": "int_range"}],
        )
    return value


MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_OFFSET = 10**9


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def of(self, query: Select[Any]) -> Select[Any]:
        """`query` limited to this page (give it an order, or pages overlap)."""
        return query.limit(self.limit).offset(self.offset)


def page(request: web.Request) -> Page:
    """?limit= (1..500, default 100) and ?offset= (0..10^9, default 0); a 400 problem naming the bad one."""
    return Page(query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE), query_int(request, "offset", 0, 0, MAX_OFFSET))


def iso_utc(dt: datetime) -> str:
    """RFC 3339 in UTC with a Z. SQLite gives naive datetimes back; they were stored in UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
