"""How the services are wired to services/contract.py, checked without starting them: one factory name for all six,
the gateway's routes cover exactly its calls in the contract, and the order event's body is the compact JSON
orders published before the contract's model existed (the field order and separators are the message format)."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from services import contract
from services.contract import ORDER_CREATED, OrderEvent
from services.gateway.routes import ROUTES

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", contract.SERVICE_NAMES)
def test_every_service_has_one_factory_and_a_main(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app")
    assert callable(app.create_service) and callable(app.main)
    assert not hasattr(app, "build")
    main = importlib.import_module(f"services.{service}.__main__")
    assert main.main is app.main
    # An app module holds the handlers and the factory; machinery goes to the kit, business to modules of its own
    # (orders/app.py was 654 lines of client framework, relay and handlers before the re-layout)
    lines = len((REPO / "services" / service / "app.py").read_text().splitlines())
    assert lines < 300, f"services/{service}/app.py has {lines} lines"


def test_the_gateway_routes_to_exactly_the_services_it_calls() -> None:
    assert sorted({route.upstream.name for route in ROUTES}) == sorted(contract.GATEWAY.calls)
    assert [route.upstream.protocol for route in ROUTES] == ["http"] * len(ROUTES)


def test_the_order_event_body_is_the_compact_json_of_before() -> None:
    fields = {"event_id": "e-1", "type": ORDER_CREATED, "order_id": "o-1", "user_id": "u-1", "total_cents": 2500,
              "currency": "EUR", "occurred_at": "2026-01-01T00:00:00Z"}
    assert OrderEvent(**fields).payload() == json.dumps(fields, separators=(",", ":")).encode()
    # a consumer ignores fields a producer may add
    assert OrderEvent.model_validate({**fields, "coupon": "X"}) == OrderEvent(**fields)


def _kit_names_imported_by_services() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in (REPO / "services").rglob("*.py"):
        if path.parent.name in ("kit", "proto"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services.kit"):
                found.update((node.module, alias.name) for alias in node.names)
    return found


def _kit_names_in_the_design() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "design.md").read_text()
    section = text[text.index("## The kit's API"):]
    section = section[:section.index("\n## ", 1)]
    found: set[tuple[str, str]] = set()
    for module, names in re.findall(r"^from (services\.kit[.\w]*) import ([\w, ]+)", section, re.MULTILINE):
        found.update((module, name.strip()) for name in names.split(","))
    return found


def test_the_design_lists_every_kit_name_a_service_imports() -> None:
    imported, listed = _kit_names_imported_by_services(), _kit_names_in_the_design()
    assert ("services.kit.app", "Service") in imported and ("services.kit.app", "Service") in listed
    assert imported - listed == set()
    for module, name in sorted(listed):  # and every listed name exists
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
