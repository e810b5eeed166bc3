"""Requests parsed strictly: JSON bodies (malformed JSON, wrong types and unknown fields are 400s with details),
integer query parameters and pages (limit/offset) within bounds, else a 400 naming the parameter.

A body is the client's input, whatever it holds: its size is bounded by the application (client_max_size: 413),
its nesting by MAX_JSON_DEPTH (400), and nothing in it can make the parser fail otherwise than with a 400. Python's
json module recurses once per level and raises RecursionError on a body of a few thousand `[`: a 500, which a
breaker shared by every client would count against the service. orjson parses without recursion limits of
Python's own (it refuses more than 1024 levels itself) and the depth is then checked without recursion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Select

from services.kit.errors import ApiError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


M = TypeVar("M", bound=BaseModel)

# No body of the shop nests deeper than 4 levels ({"items": [{"sku": ...}]}); 20 leaves room and stops abuse.
MAX_JSON_DEPTH = 20


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The body as JSON (None when empty and not `required`); a 400 problem when it is not JSON, nests deeper than
    MAX_JSON_DEPTH or is empty though required; 413 above the application's client_max_size."""
    raw = await request.read()
    if not raw:
        if required:
            raise ApiError(400, "Bad Request", "a JSON body is required")
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "Bad Request", f"the body is not valid JSON: {exc}") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise ApiError(400, "Bad Request", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


async def parse_body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
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


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter, true or false (the contract's enum); a 400 problem naming it otherwise. Anything
    else was read as false, so all=on or all=2 silently answered one's own orders instead of everyone's."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise ApiError(400, "Bad Request", f"query parameter {name} must be true or false",
                       errors=[{"field": name, "message": "true or false", "type": "bool_parsing"}])
    return raw == "true"


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
