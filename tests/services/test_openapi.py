"""The public contract (services/gateway/openapi.json) is generated, valid OpenAPI 3.1, and complete: it is what
the gateway serves and what tests/security/test_fuzz.py holds the running shop to, so a stale or partial document
would let the shop drift from it unnoticed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from services import openapi
from services.gateway.routes import ROUTES, match_route

pytestmark = pytest.mark.quick

SERVICES = Path(openapi.__file__).resolve().parent
PROBLEM_URI = re.compile(r"https://chaoslab\.dev/problems/[a-z0-9-]+")


def test_the_committed_document_is_the_generated_one() -> None:
    assert openapi.main(["--check"]) == 0, "run make generate"


def test_the_document_is_valid_openapi_and_the_validator_can_tell() -> None:
    document = openapi.build()
    validate(document)
    broken = json.loads(json.dumps(document))
    broken["paths"]["/api/orders"]["post"]["responses"] = {"201": {"content": {}}}  # a response without description
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_path_is_routed_by_the_gateway_and_every_route_is_documented() -> None:
    paths = openapi.build()["paths"]
    unrouted = [p for p in paths if match_route(p.replace("{", "").replace("}", "")) is None]
    assert not unrouted, f"documented but the gateway routes nowhere: {unrouted}"
    undocumented = [r.prefix for r in ROUTES if not any(match_route(p) is r for p in paths)]
    assert not undocumented, f"routed by the gateway but not in the contract: {undocumented}"


def test_every_problem_type_a_service_answers_is_documented() -> None:
    raised = {uri for source in SERVICES.rglob("*.py") if source.name != "openapi.py"
              for uri in PROBLEM_URI.findall(source.read_text(encoding="utf-8"))}
    assert raised, "no problem types found: the pattern is wrong"
    assert raised <= set(openapi.PROBLEM_TYPES), f"not documented: {sorted(raised - set(openapi.PROBLEM_TYPES))}"
