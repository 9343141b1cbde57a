"""One log line and the HTTP metrics for every request.

Hooked on Flask's ``request_started`` / ``request_finished`` signals rather than
``before_request`` / ``after_request``: they fire for every request, including one that another
``before_request`` hook rejected (401, 429) or that ended in an unhandled error (the 500 is
finalised through ``request_finished`` too), and after every ``after_request`` hook, so the
status logged is the status sent.

Never logged: headers other than the User-Agent (so no ``Authorization``, cookies or tokens),
the query string (reset and invite links carry tokens there), and bodies.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from flask import Flask, Response, g, request, request_finished, request_started

from app.core.requests import current_request_id
from app.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

logger = logging.getLogger("app.request")

# Requests that matched no route share one label: a scanner's random paths must not create a
# time series each (Prometheus' memory grows with every label value).
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes arrive every few seconds from machines: logged at DEBUG, still counted.
QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics"})
MAX_PATH_CHARS = 512
MAX_USER_AGENT_CHARS = 200
_STARTED_KEY = "observability_started"


def route_label() -> str:
    """The URL rule template of the request (``/api/v1/tasks/<int:task_id>``), never its path."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def method_label() -> str:
    """The method, or ``OTHER`` for an invented one (bounded label values)."""
    return request.method if request.method in KNOWN_METHODS else "OTHER"


def level_for(status: int) -> int:
    """5xx is an error of ours; 4xx is the client's (INFO: nothing for us to fix); else INFO."""
    return logging.ERROR if status >= 500 else logging.INFO


def _user_id() -> int | None:
    principal = g.get("principal")
    return getattr(principal, "user_id", None)


def _on_request_started(sender: Flask, **_extra: Any) -> None:
    request.environ[_STARTED_KEY] = time.perf_counter()


def _on_request_finished(sender: Flask, response: Response, **_extra: Any) -> None:
    started = request.environ.get(_STARTED_KEY)
    elapsed = time.perf_counter() - started if started is not None else 0.0
    route, method, status = route_label(), method_label(), response.status_code
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed)

    level = logging.DEBUG if route in QUIET_ROUTES and status < 500 else level_for(status)
    if not logger.isEnabledFor(level):
        return
    path = request.path[:MAX_PATH_CHARS]
    logger.log(
        level,
        "%s %s %s %.1fms",
        method,
        path,
        status,
        elapsed * 1000,
        extra={
            # Explicit, so that the line keeps it wherever and whenever it is formatted.
            "request_id": g.get("request_id") or current_request_id(),
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "user_id": _user_id(),
            # After ProxyFix: the client's address, not the load balancer's.
            "client_addr": request.remote_addr,
            "user_agent": (request.user_agent.string or "")[:MAX_USER_AGENT_CHARS],
            # Which gunicorn worker served it (its restarts and timeouts are logged by pid).
            "pid": os.getpid(),
        },
    )


def init_request_log(app: Flask) -> None:
    """Log and count every request of ``app``."""
    # Connected per app (sender=app), strongly, so tests with several apps stay independent.
    request_started.connect(_on_request_started, app, weak=False)
    request_finished.connect(_on_request_finished, app, weak=False)
