"""RATELIMIT_STRATEGY picks how the counters in Redis are kept; each one enforces the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.support.rate_limits import limit_keys, limited_app

TASKS = "/api/v1/tasks"
# How each strategy keeps its counters in Redis (type, hash-tagged name): one counter per window,
# a log of hits, or the counters of this window and the last under one hash tag.
STORED_AS = {
    "fixed-window": ("string", False),
    "moving-window": ("list", False),
    "sliding-window-counter": ("string", True),
}


@pytest.mark.parametrize("strategy", sorted(STORED_AS))
def test_each_strategy_enforces_the_limit_with_its_own_counters(
    strategy: str, database_url: str, instance_path: Path, redis_url: str
) -> None:
    with limited_app(
        database_url,
        instance_path,
        redis_url,
        RATELIMIT_STRATEGY=strategy,
        RATELIMIT_DEFAULT="2/minute",
    ) as app:
        client = app.test_client()
        statuses = [client.get(TASKS).status_code for _ in range(3)]
        keys = limit_keys(redis_url, app.extensions["test_key_prefix"])
        store = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            kinds = {(store.type(key), "{" in key) for key in keys}
        finally:
            store.close()
    assert statuses == [401, 401, 429]
    assert kinds == {STORED_AS[strategy]}, keys
