"""WEBHOOK_MAX_RESPONSE_BYTES: a delivery reads no more of the receiver's answer than this, so an
endless response body cannot hold a worker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.config import load_settings
from app.webhooks.background import http_options
from app.webhooks.sender import OutcomeKind, post
from app.webhooks.ssrf import UrlPolicy

LOOPBACK = UrlPolicy(allowed_ports=frozenset(), allow_private=True)
SENT_BYTES = 4096  # what the receiver sends of the gigabyte it announces, then it goes quiet


@contextmanager
def endless_receiver() -> Iterator[str]:
    """A receiver that answers 200 with a 1 GB body, sends 4 KiB of it and then nothing more,
    keeping the connection open until the test ends; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + b"x" * SENT_BYTES
            )
            done.wait(30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        done.set()
        listener.close()
        thread.join(5)


@pytest.mark.parametrize(
    ("cap", "expected"),
    [(1024, OutcomeKind.SUCCESS), (SENT_BYTES * 16, OutcomeKind.TRANSIENT)],
)
def test_the_answer_is_read_up_to_the_cap_and_no_further(
    cap: int, expected: OutcomeKind, tmp_path: Path
) -> None:
    settings = load_settings(
        APP_ENV="testing",
        INSTANCE_PATH=str(tmp_path),
        WEBHOOK_MAX_RESPONSE_BYTES=cap,
        WEBHOOK_READ_TIMEOUT_SECONDS=0.5,
    )
    with endless_receiver() as url:
        outcome = post(url, body=b"{}", headers={}, policy=LOOPBACK, options=http_options(settings))
    # Under the cap the attempt is done once the cap is read; above it, the worker would wait
    # for bytes that never come until the read timeout.
    assert outcome.kind is expected, outcome
    if expected is OutcomeKind.TRANSIENT:
        assert outcome.error == "timed out"
