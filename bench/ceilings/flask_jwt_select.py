"""Ceiling (2): a minimal Flask app that verifies an HS256 JWT with pyjwt and runs one
SQLAlchemy Core SELECT of 20 rows by owner with LIMIT, returning them as JSON.

    BENCH_DATABASE_URL=... BENCH_JWT_KEY=... \
        gunicorn -c deploy/gunicorn.conf.py bench.ceilings.flask_jwt_select:app

What ``GET /api/v1/tasks?page_size=20`` is compared with. It verifies the same tokens the
service issues (same key, issuer, audience and required claims) and reads the page the service
reads by default (newest first, through the same index), but has no revocation check, no
count, no rate limit, no request log, no metrics and no ETag: the floor of the work.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import jwt
import sqlalchemy as sa
from flask import Flask, jsonify, request

KEY = os.environ.get("BENCH_JWT_KEY", "")
ISSUER = os.environ.get("JWT_ISSUER", "flask-service-template")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "flask-service-template-api")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
POOL_SIZE = int(os.environ.get("DATABASE_POOL_SIZE", "5"))

PAGE = sa.text(
    "SELECT id, owner_id, title, description, status, priority, due_at, tags, created_at, "
    "updated_at, completed_at, version FROM tasks WHERE owner_id = :owner "
    "ORDER BY created_at DESC, id DESC LIMIT 20"
)
PRIORITIES = {0: "low", 1: "normal", 2: "high"}

flask_app = Flask(__name__)
_engines: dict[int, sa.Engine] = {}
_lock = threading.Lock()


def engine() -> sa.Engine:
    """This process's engine, created after the fork (never shared with the master)."""
    pid = os.getpid()
    with _lock:
        if pid not in _engines:
            _engines[pid] = sa.create_engine(
                DATABASE_URL, pool_size=POOL_SIZE, max_overflow=10, pool_pre_ping=False
            )
        return _engines[pid]


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


@flask_app.get("/api/v1/tasks")
def list_tasks() -> Any:
    """The caller's 20 newest tasks."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise jwt.InvalidTokenError("no bearer token")
        claims = jwt.decode(
            token,
            KEY,
            algorithms=["HS256"],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError:
        return jsonify(code="unauthorized"), 401
    with engine().connect() as connection:
        rows = connection.execute(PAGE, {"owner": int(claims["sub"])}).mappings().all()
    items = [
        {
            **row,
            "priority": PRIORITIES[row["priority"]],
            "due_at": _iso(row["due_at"]),
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
            "completed_at": _iso(row["completed_at"]),
        }
        for row in rows
    ]
    return jsonify(items=items)


# The plain WSGI callable: gunicorn.conf.py's post_fork hook treats anything with an
# app_context as the service and resets its database; this app has its own per-process engine.
app = flask_app.wsgi_app
