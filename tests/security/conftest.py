"""A lab of the security suite's own (hostile clients change state: throttled accounts, a stopped service), with
failed logins blocked for 3 s instead of 60 so that the suite can watch a block end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chaoslab.clients.shop import Customer, ShopClient
from support.lab import release_base_port, replica_args, reserve_base_port, start_lab, stop_lab

LOGIN_BLOCK_S = 3


@pytest.fixture(scope="package")
def sec_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("security-lab") / "state"
    base = reserve_base_port()
    try:
        # The fuzzer sends faster than a customer; the rate limit is not what this suite tests (tests/e2e does).
        registry = start_lab(state_dir, base, *replica_args(), "--env", f"auth:LOGIN_BLOCK_S={LOGIN_BLOCK_S}",
                             "--env", "gateway:RATE_LIMIT_RPS=500")
        yield registry
        stop_lab(state_dir)
    finally:
        release_base_port(base)


@pytest.fixture
def customer(sec_lab: dict[str, Any]) -> Customer:
    """A new customer of the security lab, logged in."""
    return ShopClient(sec_lab["gateway_url"]).sign_up(f"sec-{uuid.uuid4().hex[:10]}@example.com",
                                                      "orbit-lantern-" + uuid.uuid4().hex[:6], "Sec")
