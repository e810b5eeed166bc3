"""The shop's end-to-end tests run twice: on the default lab (a SQLite file per service) and on a lab whose
services each own a PostgreSQL database on the machine's server (127.0.0.1:5432)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services import contract
from support.lab import release_base_port, replica_args, reserve_base_port, start_lab, stop_lab
from support.prereqs import PG_HOST, PG_PORT, pg_admin, require_postgres


@pytest.fixture(scope="session")
def pg_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_postgres()
    base = reserve_base_port()
    prefix = f"chaoslab_e2e_{base}"
    state_dir = tmp_path_factory.mktemp("pg-lab") / "state"
    services = contract.SERVICE_NAMES
    try:
        # a crashed earlier run's leftovers
        pg_admin([f'DROP DATABASE IF EXISTS "{prefix}_{s}" WITH (FORCE)' for s in services])
        template = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{prefix}_{{service}}"
        registry = start_lab(state_dir, base, *replica_args("payments=2"), "--database-url-template", template)
        registry["database_url_template"] = template
        yield registry
        stop_lab(state_dir)
        pg_admin([f'DROP DATABASE IF EXISTS "{prefix}_{s}" WITH (FORCE)' for s in services])
    finally:
        release_base_port(base)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A running lab, once per database backend."""
    return request.getfixturevalue("lab" if request.param == "sqlite" else "pg_lab")
