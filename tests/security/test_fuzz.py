"""Schemathesis against the real gateway of a running lab, holding it to the contract it serves (/api/openapi.json,
generated from the services' own models by services/openapi.py): every operation, authenticated, with generated and
with deliberately invalid input, then stateful journeys along the document's links (register -> log in -> refresh;
place an order -> read it back). Zero 5xx, zero answers that break the contract (status, headers, content type,
body schema), zero errors that are not problem documents.

Bounded: FUZZ_EXAMPLES examples per operation (about a minute in all) and FUZZ_JOURNEYS stateful runs; set
CHAOSLAB_FUZZ_EXAMPLES to go deeper by hand.

What is not checked, on purpose: positive_data_acceptance (Schemathesis' "valid input must be accepted"). The
contract's schemas are necessary conditions only: a password that fits the schema may still be too easy to guess,
an email may be taken, an Idempotency-Key may have placed another order. Those are answered 400/409 as documented.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import zlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.failures import FailureGroup

from chaoslab.clients.shop import ShopClient

from .conftest import LOGIN_BLOCK_S

pytestmark = [pytest.mark.lab, pytest.mark.fuzz]

FUZZ_EXAMPLES = int(os.environ.get("CHAOSLAB_FUZZ_EXAMPLES", "15"))
FUZZ_JOURNEYS = int(os.environ.get("CHAOSLAB_FUZZ_JOURNEYS", "20"))
JOURNEY_ROUNDS = 10  # runs of the state machine until both linked steps happened (see the stateful test)
PROBLEM = "application/problem+json"
OPERATIONS = 13  # services/openapi.py's operations (a test that lost operations would pass on fewer)
# A negative body may be too large to be read at all: the gateway's 413 rejects it (Schemathesis' defaults lack it;
# seen in CI: a refresh_token past maxLength of astral characters, 12 bytes each once JSON-escaped, over 64 KiB)
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]}}})
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@schemathesis.check
def errors_are_problem_documents(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """Every error answer is application/problem+json with the status it was sent with."""
    if response.status_code < 400:
        return True
    content_type = (response.headers.get("content-type") or response.headers.get("Content-Type") or [""])[0]
    if not content_type.startswith(PROBLEM):
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not a problem document")
    body = response.json()
    if not isinstance(body, dict) or body.get("status") != response.status_code or not body.get("title"):
        raise AssertionError(f"not a problem document for {response.status_code}: {response.text[:200]}")
    return True


@pytest.fixture(scope="module")
def bearer(sec_lab: dict[str, Any]) -> dict[str, str]:
    customer = ShopClient(sec_lab["gateway_url"]).sign_up(f"fuzz-{uuid.uuid4().hex[:10]}@example.com",
                                                          "orbit-lantern-fuzz-" + uuid.uuid4().hex[:6], "Fuzz")
    return customer.auth


@pytest.fixture(scope="module")
def gateway_schema(sec_lab: dict[str, Any], bearer: dict[str, str]) -> schemathesis.BaseSchema:
    """The served contract, with every case signed in as a customer through Schemathesis' auth hook: it knows the
    token is the caller's own, so its ignored_auth check also calls each secured operation without it and with a
    forged one and expects 401 (forged tokens of every kind have their own tests in test_findings.py)."""
    schema = schemathesis.openapi.from_url(sec_lab["gateway_url"] + "/api/openapi.json", config=CONFIG)

    @schema.auth()
    class Customer:
        def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
            return bearer["Authorization"]

        def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": data}

    return schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_keeps_the_contract(gateway_schema: schemathesis.BaseSchema, sec_lab: dict[str, Any],
                                            bearer: dict[str, str], mode: GenerationMode) -> None:
    failures, checked = [], []
    for result in gateway_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @SETTINGS
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=sec_lab["gateway_url"],
                                   excluded_checks=[positive_data_acceptance],
                                   additional_checks=[errors_are_problem_documents])

        try:
            call()
        except Unsatisfiable:  # no input at all, so nothing can be invalid: only for such operations
            inputless = operation.definition.raw
            if inputless.get("parameters") or inputless.get("requestBody") or inputless.get("security"):
                failures.append(f"{operation.label}: no invalid input could be generated")
        except Exception as exc:  # noqa: BLE001 - every operation's failure is collected, then reported together
            failures.append(f"{operation.label}: {exc}")
        checked.append(operation.label)
    assert len(checked) == OPERATIONS, checked
    assert not failures, "\n\n".join(failures)


def test_stateful_journeys_keep_the_contract(gateway_schema: schemathesis.BaseSchema, sec_lab: dict[str, Any],
                                             bearer: dict[str, str]) -> None:
    """Journeys along the document's links. Their steps depend on the shop's answers (ids, tokens, throttling), so
    Hypothesis cannot replay one choice for choice: failures are collected as they happen (as Schemathesis' own
    engine does) instead of raised for shrinking, and a replay that comes out differently only ends the run early.
    That the journeys really follow links is asserted below."""
    machine = gateway_schema.as_state_machine()
    failures: list[str] = []
    answered: dict[tuple[str, int], int] = {}

    class Journeys(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": sec_lab["gateway_url"]}

        def before_call(self, case: schemathesis.Case) -> None:
            # A generated password almost never passes the policy (zxcvbn), so a journey would never get past
            # register: half of the sign-ups use a fresh strong account, which the links carry on into login and
            # refresh. Weak and malformed sign-ups are the per-operation test's.
            if case.operation.label == "POST /api/auth/register" and isinstance(case.body, dict) \
                    and zlib.crc32(repr(case.body).encode()) % 2 == 0:
                case.body = {**case.body, "email": f"journey-{uuid.uuid4().hex[:12]}@example.com",
                             "password": f"{uuid.uuid4().hex[:6]}-harbour-{uuid.uuid4().hex[:6]}"}

        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case,
                              additional_checks: list[Any] | None = None, **kwargs: Any) -> None:
            key = (case.operation.label, response.status_code)
            answered[key] = answered.get(key, 0) + 1
            if key == ("POST /api/auth/login", 429):
                # The journeys' wrong passwords blocked this client (20 failures, LOGIN_BLOCK_S): wait the block
                # out, or the next registered account's linked login is refused too (seen in CI: 16 sign-ups,
                # no login)
                time.sleep(min(float(response.headers.get("Retry-After", ["1"])[0]), LOGIN_BLOCK_S + 1))
            try:
                case.validate_response(response, excluded_checks=[positive_data_acceptance],
                                       additional_checks=[errors_are_problem_documents])
            except FailureGroup as exc:
                failures.append(f"{case.operation.label}: {exc}")

    # Both need values from earlier answers or requests: an order id (made-up ones answer 404) and the email and
    # password of an account registered on the way (logins with generated ones answer 401).
    linked = [("GET /api/orders/{order_id}", 200), ("POST /api/auth/login", 200)]
    for _ in range(JOURNEY_ROUNDS):  # until both kinds of journey happened (which steps are taken is random)
        # Flaky: a journey came out differently on a replay; the calls so far were checked
        with contextlib.suppress(Flaky):
            Journeys.run(settings=settings(max_examples=FUZZ_JOURNEYS, stateful_step_count=8, deadline=None,
                                           database=None, suppress_health_check=list(HealthCheck),
                                           phases=[Phase.explicit, Phase.generate]))
        if failures or all(answered.get(step) for step in linked):
            break
    assert not failures, "\n\n".join(failures)
    assert answered.get(linked[0]), f"no order was read back: {answered}"
    assert answered.get(linked[1]), f"no account registered on the way logged in: {answered}"


def test_the_contract_is_checked_for_real(sec_lab: dict[str, Any], bearer: dict[str, str]) -> None:
    """The checks above can fail: an answer the contract does not allow is reported."""
    schema = schemathesis.openapi.from_url(sec_lab["gateway_url"] + "/api/openapi.json")
    operation = schema["/api/orders/{order_id}"]["GET"]
    case = operation.Case(path_parameters={"order_id": "no-such-order"})
    response = case.call(base_url=sec_lab["gateway_url"], headers=bearer)
    assert response.status_code == 404
    case.validate_response(response, additional_checks=[errors_are_problem_documents])  # documented: passes
    del schema.raw_schema["paths"]["/api/orders/{order_id}"]["get"]["responses"]["404"]
    schema = schemathesis.openapi.from_dict(schema.raw_schema)
    case = schema["/api/orders/{order_id}"]["GET"].Case(path_parameters={"order_id": "no-such-order"})
    with pytest.raises(FailureGroup, match="Undocumented status code"):
        case.validate_response(response)
