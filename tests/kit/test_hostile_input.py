"""What a hostile client can send to any service of the shop and what it gets back (issue 22): a body nested
deeper than the parser copes with is a 400, a request aiohttp cannot parse is a 400 problem document, and no
secret reaches a log line."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.kit.errors import error_middleware
from services.kit.http_server import use_problem_answers_for_bad_http
from services.kit.logs import REDACTED, redact_secrets, scrub
from services.kit.validation import MAX_JSON_DEPTH, StrictModel, json_depth, parse_body

pytestmark = pytest.mark.quick


class Login(StrictModel):
    email: str
    password: str


class _Log:
    def exception(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a client's body must never reach the unhandled-error path")


async def _app() -> TestServer:
    async def login(request: web.Request) -> web.Response:
        body = await parse_body(request, Login)
        return web.json_response({"email": body.email})

    app = web.Application(client_max_size=65536, middlewares=[error_middleware(_Log())])
    app.router.add_post("/login", login)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def test_depth_is_measured_without_recursion() -> None:
    assert [json_depth(v) for v in (1, "x", [], {"a": [{"b": 1}]})] == [0, 0, 1, 3]
    deep: list[object] = []
    for _ in range(50_000):  # far deeper than Python's recursion limit
        deep = [deep]
    assert json_depth(deep) == 50_001


@pytest.mark.parametrize("body", [
    b"[" * 30_000 + b"]" * 30_000,  # the finding: ~60 KB that made json.loads raise RecursionError (a 500)
    b'{"email": ' + b"[" * 21 + b"]" * 21 + b', "password": "x"}',  # deeper than MAX_JSON_DEPTH, parseable
    b'{"email": "a@b.c", "password": "\\ud800"',  # truncated
    b"\xff\xfe not utf-8",
])
async def test_a_body_the_parser_cannot_take_is_a_400_problem(body: bytes) -> None:
    server = await _app()
    try:
        async with aiohttp.ClientSession() as http, http.post(server.make_url("/login"), data=body,
                                                           headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400, await resp.text()
            assert resp.content_type == "application/problem+json"
            problem = await resp.json(content_type=None)
            assert problem["status"] == 400 and problem["title"] == "Bad Request"
    finally:
        await server.close()
    assert MAX_JSON_DEPTH == 20


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


async def test_a_request_aiohttp_cannot_parse_gets_a_problem_document() -> None:
    use_problem_answers_for_bad_http()
    server = await _app()
    try:
        answer = await _raw(server.port, b"GET /login HTTP/1.1\r\nHost: x\r\n"
                                         b"Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln\x00\r\n\r\n")
    finally:
        await server.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", answer[:200]
    assert b"Content-Type: application/problem+json" in head
    problem = json.loads(body)
    assert problem == {"type": "about:blank", "title": "Bad Request", "status": 400,
                       "detail": "the request is not valid HTTP"}


def test_secrets_are_cut_out_of_every_log_line() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
    event = {
        "message": f"Invalid header value char: b'Authorization: Bearer {token}\\x00'",
        "exception": f"Traceback ...\nBadHttpMessage: 400, message: b'Cookie: session=abc'\nBearer {token}",
        "authorization": f"Bearer {token}", "password": "hunter2", "refresh_token": token,
        "path": "/api/orders", "status": 400,
    }
    line = json.dumps(redact_secrets(None, "warning", dict(event)))
    assert token not in line and "hunter2" not in line and "session=abc" not in line
    assert json.loads(line)["path"] == "/api/orders" and json.loads(line)["status"] == 400
    assert json.loads(line)["password"] == REDACTED
    assert scrub("nothing secret here: GET /api/orders 200") == "nothing secret here: GET /api/orders 200"
