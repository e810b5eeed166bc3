"""Typed keys for values the kit stores on aiohttp applications."""

from typing import Any

from aiohttp import web

SERVICE: web.AppKey[Any] = web.AppKey("service", object)
