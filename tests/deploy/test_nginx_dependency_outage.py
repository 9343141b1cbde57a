"""deploy/nginx/nginx.conf when every replica answers 503 because a shared dependency is down
(PostgreSQL restarting): the app's own 503 reaches the client, and the first request after the
dependency is back is served. Found by the soak (tests/soak, docs/reliability.md): counting the
app's 503s as replica failures took both replicas out of the upstream for fail_timeout, so
nginx kept answering 503 for up to 10 s after the database was back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_nginx import LoadBalancer, running_nginx


class Replica(ThreadingHTTPServer):
    """An upstream whose database is down (503 in the app's shape) until told otherwise."""

    database_up = False


class Handler(BaseHTTPRequestHandler):
    """Answer as the app does: 200, or its 503 while the database is down."""

    protocol_version = "HTTP/1.1"
    server: Replica

    def do_GET(self) -> None:
        """One request."""
        request_id = self.headers.get("X-Request-ID", "")
        if self.server.database_up:
            status, body = 200, {"items": []}
        else:
            status, body = (
                503,
                {
                    "code": "service_unavailable",
                    "status": 503,
                    "message": "The service is temporarily unavailable. Retry later.",
                    "request_id": request_id,
                },
            )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Replica", str(self.server.server_address[1]))
        if status == 503:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[LoadBalancer, list[Replica]]]:
    """nginx with the compose configuration before two replicas whose database is down."""
    replicas = [Replica(("127.0.0.1", 0), Handler) for _ in range(2)]
    for replica in replicas:
        threading.Thread(target=replica.serve_forever, daemon=True).start()
    ports = [int(replica.server_address[1]) for replica in replicas]
    try:
        with running_nginx(tmp_path, ports) as port:
            yield LoadBalancer(port, []), replicas
    finally:
        for replica in replicas:
            replica.shutdown()
            replica.server_close()


def test_the_first_request_after_the_database_is_back_is_served(
    outage: tuple[LoadBalancer, list[Replica]],
) -> None:
    load_balancer, replicas = outage
    for number in range(10):
        request_id = f"during-outage-{number}"
        status, headers, body = load_balancer.request(
            "GET", "/api/v1/tasks", {"X-Request-ID": request_id}
        )
        assert status == 503
        assert headers["retry-after"] == "5"
        assert body["request_id"] == request_id
        # A replica's own answer every time: nginx did not take them out and answer itself.
        assert "x-replica" in headers, f"request {number} was answered by nginx"

    for replica in replicas:
        replica.database_up = True
    status, _, body = load_balancer.request("GET", "/api/v1/tasks")
    assert status == 200, body
