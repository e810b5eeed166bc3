"""A replica for test_lifetimes.py: the kit's Service with lifetimes and a background task that log what they do,
and a slow route. Run as a script: `python tests/kit/lifetimes_service.py` (HTTP_PORT, ADMIN_PORT from the test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from aiohttp import web

from services import contract
from services.kit.app import Lifetime, Service


def logged(name: str) -> Lifetime:
    async def lifetime(svc: Service) -> AsyncGenerator[None, None]:
        svc.log.info("entered", lifetime=name, serving=svc.health.serving)
        yield
        svc.log.info("exited", lifetime=name, draining=svc.health.draining)

    lifetime.__name__ = name
    return lifetime


async def failing_close(svc: Service) -> AsyncGenerator[None, None]:
    yield
    raise RuntimeError("this close fails; the others still run")


def main() -> None:
    svc = Service(contract.GATEWAY)  # the gateway's facts: HTTP, no database
    runs = 0

    async def crashes_once(svc: Service) -> None:
        nonlocal runs
        runs += 1
        svc.log.info("background run", run=runs)
        if runs == 1:
            raise RuntimeError("crash")
        await asyncio.Event().wait()

    async def slow(request: web.Request) -> web.Response:
        svc.log.info("slow request in flight")
        await asyncio.sleep(1.5)
        return web.json_response({"done": True})

    svc.lifetime(logged("first"))
    svc.lifetime(failing_close)
    svc.background(crashes_once)
    svc.lifetime(logged("second"))
    svc.app.router.add_get("/slow", slow)
    svc.run()


if __name__ == "__main__":
    main()
