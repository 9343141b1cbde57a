"""Contract fuzzing with schemathesis against the running API (real HTTP, PostgreSQL, Redis and a
Celery worker): every operation as a user and as an administrator, then stateful sequences that
follow the document's links (create a task, then read, change, replace and delete it), then
directed cases for the statuses random data cannot reach. Every response must match the document
(all of schemathesis' checks); the last test proves every documented status was observed.

``SCHEMATHESIS_MAX_EXAMPLES`` (default 20) bounds the examples per operation and the stateful
scenarios; ``make fuzz`` runs the same module with many more.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.specs.openapi.checks import ignored_auth

from app import create_app
from tests.contract.conftest import STACK_SETTINGS
from tests.contract.directed import DIRECTED, Directed
from tests.contract.support import (
    DISRUPTIVE,
    OPENAPI_PATH,
    Accounts,
    Observations,
    operation_id,
    operations,
    prepare,
    served_document,
)
from tests.support.live import LiveStack
from tests.support.services import free_port

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
STATEFUL_STEPS = int(os.environ.get("SCHEMATHESIS_STATEFUL_STEPS", "10"))
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        # The harness sends the bearer token of the role under test with every case, so a case
        # generated without one would be sent with one anyway; requests without a token (or
        # with a bad one) are sent by the ignored_auth check and the directed 401 test.
        "generation": {"with-security-parameters": False},
        "operations": [
            # Narrow additions to "a valid request is accepted", for rejections that depend on
            # state no schema can describe: an If-Match naming another version is a 412
            # (RFC 9110), and a well-formed reset token that was never issued, expired or was
            # used is a 400 invalid_token. Every other check still applies to these operations.
            # createJob also takes multipart/form-data (the CSV import), and multipart carries
            # only strings: a body made "invalid" by a JSON type (a number, a null, a nested
            # object where a string belongs) reaches the server as a valid string. Its invalid
            # JSON bodies are proven rejected by tests/jobs/test_routes.py and the bad-input
            # matrix in tests/security; every other check still applies to createJob.
            {
                "include-operation-id": ["createJob"],
                "checks": {"negative_data_rejection": {"enabled": False}},
            },
            {
                "include-operation-id": ["replaceTask", "updateTask", "deleteTask"],
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "412"]}
                },
            },
            {
                "include-operation-id": ["confirmPasswordReset"],
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "400"]}
                },
            },
            # The readiness probe's documented answer when the database is down.
            {
                "include-operation-id": ["ready"],
                "checks": {
                    "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}
                },
            },
        ],
    }
)
DOCUMENT = served_document(STACK_SETTINGS)
# schemathesis adds the links it infers to the dict it loads: give it a copy.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STATEFUL_STEPS,
    deadline=None,
    # The server, not the data generation, is under test; a slow live call is no health issue.
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,  # the same cases on every run and machine: a failure reproduces
    database=None,
)

EXPLORE = (hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Generated cases get the values no schema describes; edits made here are re-validated,
    so a case stays marked valid or invalid for what is really sent."""
    if case.meta is not None:  # directed cases are sent as written
        prepare(case)


def run_case(
    case: Any, role: str, stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    """Send ``case`` as ``role``, check the response against the document, record it."""
    response = case.call_and_validate(base_url=stack.base_url, headers=accounts.headers(role))
    observations.record(
        f"{role} {case.meta.phase.name.value}", operation_id(case), response.status_code
    )
    if response.status_code == 401 or operation_id(case) in DISRUPTIVE:
        accounts.spoil(role)


def test_the_fuzzed_document_is_the_one_served(contract_stack: LiveStack) -> None:
    served = requests.get(f"{contract_stack.base_url}{OPENAPI_PATH}", timeout=10).json()

    assert served == DOCUMENT


@schema.parametrize()
@SETTINGS
def test_as_a_user(
    case: Any, contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    run_case(case, "user", contract_stack, accounts, observations)


@schema.parametrize()
@SETTINGS
def test_as_an_administrator(
    case: Any, contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    run_case(case, "admin", contract_stack, accounts, observations)


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls joined by the document's links, as one role."""

    role = "user"
    stack: LiveStack
    accounts: Accounts
    observations: Observations
    failures: list[BaseException] = []

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        """The live server, and the role's token."""
        return {"base_url": self.stack.base_url, "headers": self.accounts.headers(self.role)}

    def after_call(self, response: Any, case: Any) -> None:
        """Record the step; a step that may have revoked the token spoils it."""
        super().after_call(response, case)
        self.observations.record(f"stateful {self.role}", operation_id(case), response.status_code)
        if response.status_code == 401 or operation_id(case) in DISRUPTIVE:
            self.accounts.spoil(self.role)

    def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
        """All the checks; a failure is also kept, so no replay can lose it (see below)."""
        try:
            super().validate_response(response, case, *args, **kwargs)
        except Exception as failure:
            self.failures.append(failure)
            raise


@pytest.mark.parametrize("role", ["user", "admin"])
def test_stateful_sequences(
    role: str, contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    Workflow.role = role
    Workflow.stack = contract_stack
    Workflow.accounts = accounts
    Workflow.observations = observations

    Workflow.failures = []

    # No shrinking: a live server's state differs between replays of a sequence. For the same
    # reason Hypothesis may find that a sequence it replays offers other links than the first
    # time (FlakyStrategyDefinition); schemathesis' own runner then ends the run as passed when
    # no check failed, and so does this test. Any check failure is raised, replayed or not.
    try:
        Workflow.run(settings=hypothesis.settings(SETTINGS, phases=EXPLORE))
    except hypothesis.errors.Flaky:
        if Workflow.failures:
            raise Workflow.failures[0] from None
    assert not Workflow.failures


@pytest.mark.parametrize("scenario", DIRECTED, ids=lambda scenario: scenario.__name__)
def test_directed_case(
    scenario: Any, contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    scenario(Directed(schema, contract_stack, accounts, observations))


def test_every_limited_operation_answers_429_in_the_documented_shape(
    limited_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    # Spend the user's budget and the client address's (the callers without a token).
    for headers in (accounts.headers("user"), {}):
        requests.get(f"{limited_stack.base_url}/api/v1/users/me", headers=headers, timeout=10)
    # The limiter answers before authentication, by design: a request that schemathesis'
    # ignored_auth check re-sends with a bad token is a 429 here too, not a 401.
    directed = Directed(
        schema, limited_stack, accounts, observations, excluded_checks=[ignored_auth]
    )
    limited = [
        (path, operation)
        for path, operation in operations(DOCUMENT)
        if "429" in operation["responses"]
    ]
    assert len(limited) > 25
    for template, operation in limited:
        role = "user" if operation.get("security") else None
        path = sample_path(template)
        directed.call(operation["operationId"], 429, role=role, path_parameters=path)


SAMPLE_PATH_VALUES = {
    "task_id": 1,
    "job_id": 1,
    "user_id": 1,
    "webhook_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b",
    "delivery_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b",
}


def sample_path(template: str) -> dict[str, Any]:
    """A value for each path parameter of ``template`` (the document's path, braces and all)."""
    return {name: SAMPLE_PATH_VALUES[name] for name in re.findall(r"{(\w+)}", template)}


def test_every_secured_operation_answers_401_without_a_token(
    contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    directed = Directed(schema, contract_stack, accounts, observations)
    secured = [
        (path, operation) for path, operation in operations(DOCUMENT) if operation.get("security")
    ]
    assert len(secured) > 20
    for template, operation in secured:
        path = sample_path(template)
        directed.call(operation["operationId"], 401, role=None, path_parameters=path)


def test_every_documented_400_answers_malformed_json(
    contract_stack: LiveStack, accounts: Accounts, observations: Observations
) -> None:
    directed = Directed(schema, contract_stack, accounts, observations)
    documented = [
        (path, operation)
        for path, operation in operations(DOCUMENT)
        if "400" in operation["responses"]
        and "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(documented) >= 6
    for template, operation in documented:
        path = sample_path(template)
        directed.call(operation["operationId"], 400, path_parameters=path, raw_body=b'{"a": ')


def test_readiness_without_a_database_answers_503(
    accounts: Accounts, observations: Observations, tmp_path: Path
) -> None:
    dead = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    case = schema.find_operation_by_id("ready").Case()

    response = case.call_and_validate(app=dead)

    observations.record("directed", "ready", response.status_code)
    assert response.status_code == 503


def test_every_documented_status_was_observed(
    observations: Observations, request: pytest.FixtureRequest
) -> None:
    fuzzed = [item for item in request.session.items if item.module is request.module]
    if len(fuzzed) < len(DIRECTED) + 8:
        pytest.skip("run the whole module: the statuses are observed across all of it")
    documented = {
        (operation["operationId"], int(status))
        for _path, operation in operations(DOCUMENT)
        for status in operation["responses"]
        if status != "default"
    }

    # Reach a missing status with a directed case, or drop it from the document if it cannot
    # happen.
    assert sorted(documented - observations.seen()) == []
