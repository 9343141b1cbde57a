"""A real HTTP receiver for webhook tests: a threaded ``http.server`` on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Given the 1-based number of the request, the status, extra headers and body to answer with.
Responder = Callable[[int], tuple[int, dict[str, str], bytes]]


def always(status: int, headers: dict[str, str] | None = None) -> Responder:
    """Answer every request with ``status``."""
    return lambda _number: (status, headers or {}, b"")


def failing_first(times: int, status: int = 500) -> Responder:
    """Answer ``status`` to the first ``times`` requests, then 200."""
    return lambda number: (status if number <= times else 200, {}, b"")


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; ``responder`` decides the answer, ``delay`` simulates a slow endpoint."""

    responder: Responder = field(default_factory=lambda: always(200))
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    host: str = "127.0.0.1"
    bind_port: int = 0  # 0: any free port

    @property
    def port(self) -> int:
        """The listening port."""
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The URL to register as a webhook."""
        return f"http://{self.host}:{self.port}/hook"

    def ids(self) -> set[str]:
        """Distinct ``webhook-id`` headers received."""
        with self.lock:
            return {request.headers.get("webhook-id", "") for request in self.requests}

    def count(self) -> int:
        """Requests received so far."""
        with self.lock:
            return len(self.requests)

    def snapshot(self) -> list[Received]:
        """A copy of the requests received so far."""
        with self.lock:
            return list(self.requests)

    def start(self) -> Receiver:
        """Listen on a free port, serving from a daemon thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    number = len(receiver.requests)
                if receiver.delay:
                    time.sleep(receiver.delay)  # the endpoint's own slowness, not a test wait
                status, headers, answer = receiver.responder(number)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client hung up (a killed worker, a capped read): its business

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((self.host, self.bind_port), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    """``receiver``, started, and stopped afterwards."""
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
