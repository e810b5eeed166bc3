"""Creating each service's PostgreSQL database when the database URL template points at PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import URL, make_url

from chaoslab.errors import LabError
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.spec import LabSpec


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _ensure(urls: list[URL]) -> list[str]:
    import asyncpg  # the lab's only use of it; imported when needed

    created = []
    for url in urls:
        try:
            conn = await asyncpg.connect(
                host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
                password=url.password, database="postgres", timeout=10,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            where = f"{url.host or '127.0.0.1'}:{url.port or 5432}"
            raise LabError(f"cannot connect to PostgreSQL at {where} as {url.username}: {exc}",
                           hint="check the --database-url-template (user, host, port) and that PostgreSQL runs") \
                from None
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
            if not exists:
                await conn.execute(f"CREATE DATABASE {_quote_ident(url.database or '')}")
                created.append(url.database or "")
        except asyncpg.DuplicateDatabaseError:
            pass  # created meanwhile by someone else: fine
        except asyncpg.PostgresError as exc:
            raise LabError(f"cannot create database {url.database!r}: {exc}") from None
        finally:
            await conn.close()
    return created


def ensure_databases(spec: LabSpec) -> list[str]:
    """Create the missing databases of the services that run; returns the names created."""
    urls = [make_url(spec.database_url(s)) for s in SERVICES if spec.replicas.get(s, 0) > 0]
    urls = [u for u in urls if u.get_backend_name() == "postgresql"]
    if not urls:
        return []
    return asyncio.run(_ensure(urls))
