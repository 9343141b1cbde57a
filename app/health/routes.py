"""``/health/live`` (the process answers) and ``/health/ready`` (its dependencies answer)."""

from __future__ import annotations

import time
from typing import Any

import marshmallow as ma
from flask import current_app
from sqlalchemy import text

from app.core.api import Blueprint
from app.extensions import db

# Probes are never rate limited: a throttled liveness check would restart a healthy process.
blp = Blueprint(
    "health",
    __name__,
    url_prefix="/health",
    description="Liveness and readiness",
    rate_limited=False,
)


class Live(ma.Schema):
    """The process is up."""

    status = ma.fields.String(required=True, metadata={"example": "ok"})


class Dependency(ma.Schema):
    """One dependency's state."""

    status = ma.fields.String(required=True, metadata={"example": "ok"})
    latency_ms = ma.fields.Float(required=True, metadata={"example": 1.4})
    error = ma.fields.String(metadata={"example": "OperationalError"})


class Ready(ma.Schema):
    """Each dependency and the overall verdict."""

    status = ma.fields.String(required=True, metadata={"example": "ok"})
    checks = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Nested(Dependency),
        required=True,
        metadata={"example": {"database": {"status": "ok", "latency_ms": 1.4}}},
    )


@blp.route("/live")
@blp.response(200, Live)
@blp.doc(operationId="live")
def live() -> dict[str, str]:
    """Liveness: the process answers (no dependency is checked)."""
    return {"status": "ok"}


def check_database(timeout_ms: int) -> dict[str, Any]:
    """Run ``SELECT 1`` with a statement timeout; report status and latency."""
    started = time.perf_counter()
    try:
        with db.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            connection.execute(text("SELECT 1"))
        result: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # any failure means "not ready"; the type is enough to diagnose
        result = {"status": "error", "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


@blp.route("/ready")
@blp.response(200, Ready)
@blp.alt_response(503, schema=Ready, description="A dependency is not ready")
@blp.doc(operationId="ready")
def ready() -> tuple[dict[str, Any], int]:
    """Readiness: every dependency answers within its timeout (503 otherwise)."""
    settings = current_app.extensions["settings"]
    checks = {"database": check_database(settings.HEALTH_CHECK_TIMEOUT_MS)}
    ok = all(check["status"] == "ok" for check in checks.values())
    return {"status": "ok" if ok else "error", "checks": checks}, 200 if ok else 503
