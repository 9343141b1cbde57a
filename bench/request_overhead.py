"""What the request log line and the HTTP metrics cost per request, measured in one run.

    .venv/bin/python bench/request_overhead.py            # in-memory metrics (one process)
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/request_overhead.py
                                                          # per-process files (gunicorn)

Serves the same request through Flask's test client with the observability hooks connected and
then disconnected, the log line written as JSON to /dev/null (as a container's stderr would
be), and reports the difference per request and as a share of the request. No database: the
route answers 404 through the app's error handler, so what is measured is Flask + the hooks.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import request_finished, request_started

from app import create_app
from app.core.logging import JsonFormatter
from app.observability import request_log

REQUESTS = 3000
ROUNDS = 5


def per_request_seconds(client: object, path: str) -> float:
    """Median over ``ROUNDS`` of the mean time of ``REQUESTS`` requests."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(REQUESTS):
            client.get(path)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - started) / REQUESTS)
    return statistics.median(samples)


def main() -> None:
    """Run both variants and print the figures."""
    app = create_app({"APP_ENV": "testing", "LOG_LEVEL": "INFO"})
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_service_handler", False):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
            handler.setFormatter(JsonFormatter())
    client = app.test_client()
    path = "/api/v1/no-such-route"
    per_request_seconds(client, path)  # warm up

    with_hooks = per_request_seconds(client, path)
    request_started.disconnect(request_log._on_request_started, app)
    request_finished.disconnect(request_log._on_request_finished, app)
    without_hooks = per_request_seconds(client, path)

    mode = "multiprocess files" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in-memory"
    overhead = with_hooks - without_hooks
    print(f"metrics: {mode}; {REQUESTS} requests x {ROUNDS} rounds (median)")
    print(f"  with log line + metrics: {with_hooks * 1e6:8.1f} us/request")
    print(f"  without:                 {without_hooks * 1e6:8.1f} us/request")
    share = overhead / without_hooks
    print(f"  overhead:                {overhead * 1e6:8.1f} us/request ({share:.1%})")


if __name__ == "__main__":
    main()
