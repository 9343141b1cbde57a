"""A live stack for contract fuzzing: its own committed database, the API over real HTTP, a real
Celery worker on real Redis, rate limits raised so the fuzzer measures the contract, not the
limiter. Accounts get a fresh token before every generated case, so a case that logs out,
deactivates or deletes a fuzzing account cannot blind the cases after it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import RATE_LIMIT_SETTINGS
from tests.contract.support import Accounts, Observations
from tests.support.live import LiveStack, live_database

# High enough that no generated case meets a limit (tests/security proves the limits).
RAISED_LIMIT = "1000000/minute"
STACK_SETTINGS = dict.fromkeys(RATE_LIMIT_SETTINGS, RAISED_LIMIT)
# Webhooks created by the fuzzer point at a closed loopback port: deliveries are attempted,
# fail and are retried, so delivery lists and redelivery have something to show.
STACK_SETTINGS["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"
STACK_SETTINGS["LOG_LEVEL"] = "WARNING"


@pytest.fixture(scope="module")
def contract_stack(
    postgres_server_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """The API served over HTTP with a worker, on a database of its own."""
    with live_database(postgres_server_url) as database_url:
        stack = LiveStack(
            database_url,
            redis_url,
            tmp_path_factory.mktemp("contract"),
            overrides=dict(STACK_SETTINGS),
        )
        # One line per request from the server thread would bury a failure's report.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        stack.start_app()
        stack.reset()
        try:
            stack.start_worker(concurrency=1)
            yield stack
        finally:
            stack.close()
            assert stack.app is not None
            with stack.app.app_context():
                from app.extensions import db

                db.engine.dispose()


@pytest.fixture(scope="module")
def accounts(contract_stack: LiveStack) -> Accounts:
    """The fuzzing user and administrator, with fresh tokens on demand."""
    assert contract_stack.app is not None
    return Accounts(contract_stack.app)


OBSERVATIONS = pytest.StashKey[Observations]()


@pytest.fixture(scope="module")
def observations(request: pytest.FixtureRequest) -> Observations:
    """Every (operation, status) the module's cases received (reported at the end)."""
    observed = Observations()
    request.config.stash[OBSERVATIONS] = observed
    return observed


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How many cases were generated, per source."""
    observed = config.stash.get(OBSERVATIONS, None)
    if observed is not None and observed.cases:
        by_source = ", ".join(f"{source} {count}" for source, count in observed.cases.items())
        terminalreporter.write_line(
            f"contract fuzzing: {sum(observed.cases.values())} cases ({by_source}); "
            f"{len(observed.seen())} distinct (operation, status) pairs"
        )


@pytest.fixture(scope="module")
def limited_stack(
    contract_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """A second server on the same database whose API budget is one request an hour."""
    stack = LiveStack(
        contract_stack.database_url,
        contract_stack.redis_url,
        tmp_path_factory.mktemp("limited"),
        overrides={**STACK_SETTINGS, "RATELIMIT_DEFAULT": "1/hour"},
    )
    stack.start_app()
    try:
        yield stack
    finally:
        stack.close()
