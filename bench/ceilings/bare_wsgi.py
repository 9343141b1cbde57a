"""Ceiling (1): a bare WSGI app returning a small JSON body, no framework at all.

    gunicorn -c deploy/gunicorn.conf.py bench.ceilings.bare_wsgi:app

What ``GET /health/live`` is compared with: the cost of gunicorn and HTTP alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with ``BODY``."""
    start_response("200 OK", HEADERS)
    return [BODY]
