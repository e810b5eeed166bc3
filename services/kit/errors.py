"""Errors as RFC 9457 problem documents: one stable JSON shape for every error a client can see."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

PROBLEM_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str  # where in the request: a body field ("items.0.sku"), a header or a query parameter
    message: str
    type: str


class Problem(BaseModel):
    """Every error answer of the shop (RFC 9457): the shape services/openapi.py documents and the fuzzer checks."""

    model_config = ConfigDict(extra="allow")  # a problem type may add members (`reason`, `upstream`)

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None  # 400: every field that failed validation


def problem_response(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


class ApiError(Exception):
    """Raise from a handler; the kit's error middleware turns it into a problem response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def response(self) -> web.Response:
        return problem_response(self.status, self.title, self.detail, headers=self.headers, **self.extra)


def error_middleware(log: Any) -> Any:
    """Turn every failure into a problem document; a traceback goes to the log, never to the client."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
            return problem_response(exc.status, exc.reason, headers=headers or None)
        except Exception:
            log.exception("unhandled error", path=request.path, method=request.method)
            return problem_response(500, "Internal Server Error", "the error was logged")

    return middleware
