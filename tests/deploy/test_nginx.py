"""deploy/nginx/nginx.conf, the compose load balancer, run for real in front of two replicas.

The replicas are two small HTTP servers on loopback that echo what they received, so each test
sees exactly what nginx forwards. The client connects from 127.0.0.2, so the client's address
and nginx's own (127.0.0.1) differ.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder

from app.config import PROJECT_ROOT, Settings
from tests.support.live import wait_for
from tests.support.services import answers, ensure_nginx, free_port

NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx" / "nginx.conf"
CLIENT_ADDRESS = "127.0.0.2"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class Replica(ThreadingHTTPServer):
    """An upstream that answers every request with what it received, as JSON."""

    name: str


class EchoHandler(BaseHTTPRequestHandler):
    """Echo the method, path, headers and body size."""

    protocol_version = "HTTP/1.1"
    server: Replica

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        payload = json.dumps(
            {
                "replica": self.server.name,
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body_bytes": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """Echo."""
        self._echo()

    def do_POST(self) -> None:
        """Echo."""
        self._echo()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@dataclass
class LoadBalancer:
    """nginx on 127.0.0.1:``port`` in front of ``replicas``."""

    port: int
    replicas: list[Replica]

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """One request from CLIENT_ADDRESS; status, headers (lower-case) and JSON body."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(CLIENT_ADDRESS, 0)
        )
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            answer = {name.lower(): value for name, value in response.getheaders()}
            return response.status, answer, json.loads(raw) if raw else None
        finally:
            connection.close()


def render(conf: str, *, ports: list[int], port: int, prefix: Path) -> str:
    """nginx.conf with the replicas on loopback, listening on ``port``, state under ``prefix``."""
    for name, upstream_port in zip(("api-1", "api-2"), ports, strict=True):
        conf, count = re.subn(rf"server {name}:8000", f"server 127.0.0.1:{upstream_port}", conf)
        assert count == 1, f"nginx.conf has no upstream {name}:8000"
    conf, count = re.subn(r"listen 80 default_server;", f"listen 127.0.0.1:{port};", conf)
    assert count == 1
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temp_paths, 1)
    head = f"daemon off;\npid {prefix / 'nginx.pid'};\n"
    if os.geteuid() == 0:
        head += "user root;\n"  # workers write their temporary files under the test's folder
    return head + conf


@contextmanager
def running_nginx(prefix: Path, upstream_ports: list[int]) -> Iterator[int]:
    """nginx with the compose configuration before ``upstream_ports``, its state under ``prefix``;
    yields the port it listens on once it answers, and stops it on exit."""
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render(NGINX_CONF.read_text(), ports=upstream_ports, port=port, prefix=prefix))
    log_path = prefix / "nginx.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [ensure_nginx(), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: answers("127.0.0.1", port) or process.poll() is not None, 15, "nginx")
            assert process.poll() is None, log_path.read_text()
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def load_balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadBalancer]:
    """nginx with the compose configuration, in front of two echoing replicas."""
    replicas = []
    for name in ("api-1", "api-2"):
        replica = Replica(("127.0.0.1", 0), EchoHandler)
        replica.name = name
        threading.Thread(target=replica.serve_forever, daemon=True).start()
        replicas.append(replica)
    ports = [int(replica.server_address[1]) for replica in replicas]
    try:
        with running_nginx(tmp_path_factory.mktemp("nginx"), ports) as port:
            yield LoadBalancer(port, replicas)
    finally:
        for replica in replicas:
            replica.shutdown()
            replica.server_close()


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(NGINX_CONF.read_text(), ports=[1, 2], port=free_port(), prefix=tmp_path))
    result = subprocess.run(
        [ensure_nginx(), "-t", "-p", str(tmp_path), "-e", "/dev/stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_requests_are_spread_over_both_replicas(load_balancer: LoadBalancer) -> None:
    served = {load_balancer.request("GET", f"/api/v1/tasks?n={n}")[2]["replica"] for n in range(6)}
    assert served == {"api-1", "api-2"}


def test_a_spoofed_forwarded_for_cannot_change_the_address_the_app_sees(
    load_balancer: LoadBalancer,
) -> None:
    _, _, echo = load_balancer.request("GET", "/", {"X-Forwarded-For": "203.0.113.9"})
    forwarded = echo["headers"]["x-forwarded-for"]
    assert forwarded == f"203.0.113.9, {CLIENT_ADDRESS}"  # nginx appended what it saw
    # The app's ProxyFix with PROXY_FIX_X_FOR=1 (as compose sets it) reads only the last hop.
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["address"] = environ["REMOTE_ADDR"]
        start_response("204 No Content", [])
        return []

    environ = EnvironBuilder(
        headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "http"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ).get_environ()
    ProxyFix(app, x_for=1)(environ, lambda *_: None)
    assert seen["address"] == CLIENT_ADDRESS
    assert echo["headers"]["x-forwarded-proto"] == "http"


def test_request_ids_pass_through_when_well_formed_else_are_generated(
    load_balancer: LoadBalancer,
) -> None:
    _, _, echo = load_balancer.request("GET", "/", {"X-Request-ID": "client-chosen-id-1"})
    assert echo["headers"]["x-request-id"] == "client-chosen-id-1"
    for sent in ({}, {"X-Request-ID": 'bad" id'}, {"X-Request-ID": "short"}):
        _, _, echo = load_balancer.request("GET", "/", sent)
        generated = echo["headers"]["x-request-id"]
        assert REQUEST_ID.match(generated)
        assert generated != sent.get("X-Request-ID")


def test_metrics_are_not_reachable_through_the_load_balancer(load_balancer: LoadBalancer) -> None:
    status, headers, body = load_balancer.request("GET", "/metrics")
    assert status == 404
    assert body["code"] == "not_found"
    assert headers["x-request-id"] == body["request_id"]


def test_the_body_limit_matches_max_content_length_with_a_json_error(
    load_balancer: LoadBalancer,
) -> None:
    limit = Settings.model_fields["MAX_CONTENT_LENGTH"].default
    status, _, echo = load_balancer.request("POST", "/api/v1/tasks", body=b"x" * limit)
    assert status == 200
    assert echo["body_bytes"] == limit
    # One byte more: refused by nginx before any replica sees it (100-continue: no body sent).
    with socket.create_connection(("127.0.0.1", load_balancer.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nX-Request-ID: big-body-request\r\n"
            + f"Content-Length: {limit + 1}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        response = sock.recv(65536).decode()
    head, _, body = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert "application/json" in head
    assert json.loads(body) == {
        "code": "payload_too_large",
        "status": 413,
        "message": "The request body is too large.",
        "request_id": "big-body-request",
    }


def test_no_replica_answering_is_a_json_503(tmp_path: Path) -> None:
    with running_nginx(tmp_path, [free_port(), free_port()]) as port:
        status, headers, body = LoadBalancer(port, []).request("GET", "/api/v1/tasks")
    assert status == 503
    assert headers["retry-after"] == "5"
    assert body["code"] == "service_unavailable"
    assert REQUEST_ID.match(body["request_id"])
    assert headers["x-request-id"] == body["request_id"]
