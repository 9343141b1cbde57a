"""Apps with their own rate-limit settings, counting in the test Redis under a unique prefix,
each inside a rolled-back database transaction (like the ``db_session`` fixture)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from flask import Flask

from app.extensions import db
from tests.conftest import make_test_app
from tests.support.database import rolled_back_transaction

# High enough that only the limit a test lowers is ever met.
UNLIMITED = "100000/minute"


def closed_port_url() -> str:
    """A Redis URL on a loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@contextmanager
def limited_app(
    database_url: str, instance_path: Path, storage_url: str, **overrides: Any
) -> Iterator[Flask]:
    """An app whose counters live at ``storage_url`` under a fresh key prefix (or the
    ``REDIS_KEY_PREFIX`` given: another process of the same deployment)."""
    prefix = overrides.pop("REDIS_KEY_PREFIX", None) or f"test-limits-{uuid.uuid4().hex[:8]}:"
    app = make_test_app(
        database_url,
        instance_path,
        RATELIMIT_STORAGE_URL=storage_url,
        REDIS_KEY_PREFIX=prefix,
        **overrides,
    )
    app.extensions["test_key_prefix"] = prefix
    try:
        with rolled_back_transaction(app):
            yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        if storage_url.startswith("redis://"):
            delete_keys(storage_url, prefix)


def limit_keys(storage_url: str, prefix: str) -> list[str]:
    """The rate-limit keys under ``prefix``."""
    client = redis.Redis.from_url(storage_url, decode_responses=True)
    try:
        return list(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


def delete_keys(storage_url: str, prefix: str) -> None:
    """Remove what a test counted (the keys expire anyway with their window)."""
    client = redis.Redis.from_url(storage_url, socket_connect_timeout=1)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()
