"""Helpers of the contract tests: the document fuzzed, accounts with fresh tokens, what was
observed, and the few values a schema cannot describe."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask

from app import create_app
from app.core.database import utcnow
from app.core.security import password_hashing, token_codec
from app.extensions import db
from app.users.models import AuthSession, User

OPENAPI_PATH = "/api/v1/openapi.json"
PASSWORD = "correct horse battery staple"
EMAILS = {"user": "fuzz-user@example.com", "admin": "fuzz-admin@example.com"}
# Operations after which the caller's token may be revoked or its account changed.
DISRUPTIVE = frozenset({"logout", "updateCurrentUser", "updateUser", "deleteUser"})
# Text, not bytes: schemathesis counts an edited body holding bytes as invalid.
IMPORT_CSV = "title,status,tags\nImported by the fuzzer,todo,fuzz\n"
# Nothing listens there: deliveries fail and are retried, which is what the fuzzer needs.
RECEIVER_NETLOC = "127.0.0.1:9"


def served_document(settings: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI document an app with ``settings`` serves (no database is touched)."""
    app = create_app({"APP_ENV": "testing", "DATABASE_URL": "sqlite://", **settings})
    document: dict[str, Any] = app.test_client().get(OPENAPI_PATH).get_json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path template, operation) for every operation of ``document``."""
    return [
        (path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def operation_id(case: Any) -> str:
    """The operationId of ``case``'s operation."""
    return str(case.operation.definition.raw["operationId"])


class Accounts:
    """The fuzzing user and administrator, repaired whenever a token is minted.

    A generated case may log out (revoking the session), change the password or the email,
    deactivate, demote or delete an account. After such a case (or any 401) the role's token is
    spoiled; the next one puts the account back as it should be and opens a new login session,
    so no case is blinded by the ones before it.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._tokens: dict[str, str] = {}

    def headers(self, role: str) -> dict[str, str]:
        """``Authorization`` for the ``role`` account."""
        with self._lock:
            token = self._tokens.get(role) or self._mint(role)
            self._tokens[role] = token
        return {"Authorization": f"Bearer {token}"}

    def spoil(self, role: str) -> None:
        """Forget ``role``'s token: the last case may have revoked it or changed the account."""
        with self._lock:
            self._tokens.pop(role, None)

    def user_id(self, role: str) -> int:
        """The id of the ``role`` account (repaired first)."""
        self.spoil(role)
        self.headers(role)
        return self._ids[role]

    def _mint(self, role: str) -> str:
        with self.app.app_context():
            session = db.session()
            try:
                user = self._repair(session, role)
                login = AuthSession(user_id=user.id, expires_at=utcnow() + timedelta(days=1))
                session.add(login)
                session.commit()
                codec = token_codec()
                return codec.encode(subject=user.id, token_type="access", session_id=login.id).token
            finally:
                db.session.remove()

    def _repair(self, session: Any, role: str) -> User:
        user = session.get(User, self._ids[role]) if role in self._ids else None
        if user is None:
            user = User(email=EMAILS[role], password_hash=password_hashing().hash(PASSWORD))
            session.add(user)
        user.email = EMAILS[role]
        user.role = role
        user.is_active = True
        if not password_hashing().verify(user.password_hash, PASSWORD):
            user.password_hash = password_hashing().hash(PASSWORD)
        session.flush()
        self._ids[role] = user.id
        return user


class Observations:
    """(operationId, status) pairs received, and the number of cases sent per source."""

    def __init__(self) -> None:
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.cases: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, source: str, operation: str, status: int) -> None:
        """Count one case of ``source`` whose operation answered ``status``."""
        with self._lock:
            self.statuses[(operation, status)] += 1
            self.cases[source] += 1

    def seen(self) -> set[tuple[str, int]]:
        """Every (operationId, status) received so far."""
        return set(self.statuses)


def prepare(case: Any) -> None:
    """Give a generated case the few values no schema can describe, without changing whether it
    is valid (schemathesis re-validates an edited case before sending it).

    - ``Idempotency-Key``: a valid key is made unique, since a key re-used with another body is
      a 422 by design (proven in tests/jobs/test_idempotency.py and the directed cases).
    - ``current_password``: the account's real one; a wrong one is a 422 by design
      (tests/users/test_routes.py).
    - a webhook ``url`` of the documented shape points at a loopback receiver: the test machine
      has no DNS, and the SSRF guard refuses every host that does not resolve
      (tests/webhooks/test_ssrf.py proves the guard itself).
    - the ``tasks.import`` file of a valid case: a usable CSV, since the file's content is checked
      when the job is created (tests/jobs/test_routes.py proves the refusals).
    - a query parameter whose value is None, ``[]`` or ``{}`` is removed: the HTTP client would
      drop it silently, and schemathesis would judge the request by a parameter never sent.
    """
    if isinstance(case.query, dict):
        for name, value in list(case.query.items()):
            if value is None or value == [] or value == {}:
                del case.query[name]  # requests sends no such parameter: say so
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 200 and all(33 <= ord(c) <= 126 for c in key):
        case.headers["Idempotency-Key"] = f"{key}-{uuid.uuid4().hex}"
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("current_password"), str) and body["current_password"]:
        body["current_password"] = PASSWORD
    if isinstance(body.get("url"), str):
        try:
            parts = urlsplit(body["url"])
            usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:
            usable = False
        if usable and "@" not in parts.netloc:
            body["url"] = urlunsplit(("http", RECEIVER_NETLOC, parts.path, parts.query, ""))
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and body.get("type") == "tasks.import":
        body["file"] = IMPORT_CSV
