"""Fixtures of the webhook tests: settings overrides, a fake DNS, a real loopback receiver."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from tests.webhooks.receiver import Receiver

PUBLIC_HOST = "hooks.example.com"
PUBLIC_ADDRESS = "93.184.215.14"

Override = Callable[..., None]


@pytest.fixture
def override_settings(app: Flask) -> Iterator[Override]:
    """Change settings of the shared test app for one test (restored afterwards)."""
    original = app.extensions["settings"]

    def override(**values: Any) -> None:
        app.extensions["settings"] = app.extensions["settings"].model_copy(update=values)

    yield override
    app.extensions["settings"] = original


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name -> addresses that ``socket.getaddrinfo`` answers; other names resolve for real.

    ``hooks.example.com`` resolves to a public address by default. A list value is answered as
    a whole; assign a callable-free list per test to change it.
    """
    table: dict[str, list[str]] = {PUBLIC_HOST: [PUBLIC_ADDRESS]}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if isinstance(host, str) and host in table:
            return [answer(address, port) for address in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def answer(address: str, port: Any) -> tuple[Any, ...]:
    """One ``getaddrinfo`` result for ``address``."""
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port or 0), 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 answering 200 (change ``responder`` per test)."""
    instance = Receiver().start()
    yield instance
    instance.stop()


@pytest.fixture
def loopback_allowed(override_settings: Override) -> Override:
    """Deliveries may target loopback receivers; retries are due after milliseconds."""
    override_settings(
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        WEBHOOK_BACKOFF_BASE_SECONDS=0.05,
        WEBHOOK_BACKOFF_CAP_SECONDS=1.0,
        WEBHOOK_CONNECT_TIMEOUT_SECONDS=1.0,
        WEBHOOK_READ_TIMEOUT_SECONDS=1.0,
    )
    return override_settings
