"""Prerequisites of some suites (the machine's PostgreSQL): skipped with the reason when missing, except with
CI=true, where setup provides everything and a missing one fails the run."""

from __future__ import annotations

import os

PG_HOST, PG_PORT = "127.0.0.1", 5432


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip the calling test for a missing prerequisite; with CI=true, where setup installs everything, fail."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: setup should have provided it)")
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip (or, with CI=true, fail) the calling test when the machine's PostgreSQL does not answer."""
    import socket

    import pytest

    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return
    except OSError:
        pass
    message = f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the PostgreSQL suite must run)")
    pytest.skip(f"{message}: start it to run the PostgreSQL suite")


def pg_admin(statements: list[str]) -> None:
    """Run statements as postgres on the maintenance database (CREATE/DROP DATABASE for tests)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
