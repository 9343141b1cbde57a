"""Sentry and OpenTelemetry, when configured, send what they should to a real local receiver.

Each runs the app in a subprocess: both libraries install process-wide hooks, which must not
leak into the rest of the suite.
"""

from __future__ import annotations

import gzip
import sys
import textwrap
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.commands import run

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def receiver() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    """A loopback HTTP server recording (path, decoded body) of every POST."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding == "br":
                import brotli  # type: ignore[import-not-found]

                body = brotli.decompress(body)
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), received
    finally:
        server.shutdown()
        server.server_close()


def run_app_script(script: str, tmp_path: Path, database_url: str, **settings: str) -> None:
    """Run ``script`` in a fresh interpreter once ``app = create_app(...)`` has built the app of
    the testing profile on ``database_url`` with ``settings``; fail with its output."""
    config = {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path),
        **settings,
    }
    prelude = f"from app import create_app\napp = create_app({config!r})\n"
    result = run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "APP_ENV": "testing"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sentry_receives_an_unexpected_error_without_secrets(
    database_url: str, tmp_path: Path
) -> None:
    with receiver() as (port, received):
        run_app_script(
            """
            import sentry_sdk

            def explode():
                raise RuntimeError("sentry-test-boom")

            app.add_url_rule("/_explode", "explode", explode, methods=["POST"])
            response = app.test_client().post(
                "/_explode?token=query-secret",
                json={"password": "body-secret-password"},
                headers={"Authorization": "Bearer header-secret-token"},
            )
            assert response.status_code == 500, response.status_code
            sentry_sdk.flush(timeout=10)
            """,
            tmp_path,
            database_url,
            SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/42",
        )
    envelopes = [body.decode(errors="replace") for path, body in received if "/api/42/" in path]
    events = [envelope for envelope in envelopes if "sentry-test-boom" in envelope]
    assert events, f"no error event reached Sentry: {[p for p, _ in received]}"
    for secret in ("body-secret-password", "header-secret-token", "publickey@"):
        assert all(secret not in envelope for envelope in envelopes), secret


def test_opentelemetry_exports_flask_sqlalchemy_and_celery_spans(
    database_url: str, tmp_path: Path
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    with receiver() as (port, received):
        run_app_script(
            """
            from app.core.messaging import send_task

            client = app.test_client()
            response = client.post(
                "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 8}
            )
            assert response.status_code == 401, response.status_code
            assert client.get("/health/live").status_code == 200  # not traced
            with app.test_request_context():
                send_task("events.dispatch", ("00000000-0000-0000-0000-000000000000",))
            assert app.extensions["tracer_provider"].force_flush(10_000)
            """,
            tmp_path,
            database_url,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        )
    spans: dict[str, set[str]] = {}
    for path, body in received:
        assert path == "/v1/traces"
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                names = spans.setdefault(scope_spans.scope.name, set())
                names.update(span.name for span in scope_spans.spans)
    assert "POST /api/v1/auth/login" in spans.get("opentelemetry.instrumentation.flask", set())
    assert spans.get("opentelemetry.instrumentation.sqlalchemy"), spans
    assert any(
        "events.dispatch" in name
        for name in spans.get("opentelemetry.instrumentation.celery", set())
    ), spans
    assert not any("health" in name for names in spans.values() for name in names)


def test_nothing_is_loaded_unless_configured(database_url: str, tmp_path: Path) -> None:
    run_app_script(
        """
        import sys

        # (redis itself imports opentelemetry.sdk.metrics when it is installed; not ours.)
        ours = ("sentry_sdk", "opentelemetry.instrumentation", "opentelemetry.exporter")
        loaded = [name for name in sys.modules if name.startswith(ours)]
        assert not loaded, loaded
        """,
        tmp_path,
        database_url,
    )
