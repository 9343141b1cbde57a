"""The ``@idempotent`` view decorator: honour an ``Idempotency-Key`` header on a creating POST.

Put it last (closest to the function), below ``@blp.response``, so that a replay is serialised
exactly like the first response::

    @blp.auth()
    @blp.arguments(TaskCreate)
    @blp.response(201, Task)
    @blp.errors(400, 409, 415, 422)
    @blp.doc(operationId="createTask")
    @idempotent("createTask", TaskModel, headers=created_headers)
    def post(self, values): ...

Semantics (after the IETF httpapi Idempotency-Key draft): the key is scoped per user and per
operation; a retry with the same key and the same request returns the resource created the first
time, in its current representation, with the same status and ``Idempotent-Replayed: true``; the
same key with a different request is a 422 (``idempotency_key_reused``); a request whose first
attempt failed is simply executed again. Keys expire after ``IDEMPOTENCY_KEY_TTL_SECONDS``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import timedelta
from typing import Any, TypeVar

from flask import request
from sqlalchemy.orm import Session

from app.config import current_settings
from app.core.auth import current_principal
from app.core.database import utcnow
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.idempotency import service
from app.idempotency.models import IdempotencyKey

F = TypeVar("F", bound=Callable[..., Any])

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255

IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": (
        "A unique value (1 to 255 visible ASCII characters, e.g. a UUID) that makes retrying "
        "this request safe: the same key with the same body returns the first result, with "
        f"`{REPLAYED_HEADER}: true`; with a different body it is a 422. Keys are kept 24 hours "
        "per user."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": "^[!-~]+$",
        "example": "5f2b8c1e-7d4a-4c1b-9e3f-2a6d8b0c4e1f",
    },
}


def idempotent(
    operation: str,
    resource: type[Any],
    *,
    headers: Callable[[Any], Mapping[str, str]] | None = None,
) -> Callable[[F], F]:
    """Make the decorated creating view honour ``Idempotency-Key``.

    ``operation`` names the endpoint (its operationId); ``resource`` is the model the view
    creates; ``headers`` gives the headers of a replayed response (``Location``, ``ETag``).
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            raw_key = request.headers.get(HEADER)
            if raw_key is None:
                return view(*args, **kwargs)
            key = _checked_key(raw_key)
            user_id = current_principal().user_id
            fingerprint = service.request_fingerprint(
                request.method, request.path, _canonical_body()
            )
            session = db.session()
            record, claimed = _claim_or_find(session, user_id, operation, key, fingerprint)
            if not claimed:
                return _replay(session, record, fingerprint, user_id, resource, headers)
            with service.remember_resource(session, record, resource):
                try:
                    return view(*args, **kwargs)
                except BaseException:
                    _forget_claim(session, record)
                    raise

        apidoc = deepcopy(getattr(view, "_apidoc", {}))
        apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(
            dict(IDEMPOTENCY_KEY_PARAMETER)
        )
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def _checked_key(value: str) -> str:
    if not 1 <= len(value) <= KEY_MAX_LENGTH or not all(33 <= ord(char) <= 126 for char in value):
        raise ValidationFailed(
            errors={
                "headers": {HEADER: [f"Must be 1 to {KEY_MAX_LENGTH} visible ASCII characters."]}
            }
        )
    return value


def _forget_claim(session: Session, record: IdempotencyKey) -> None:
    """A failed request leaves no claim behind, so the key may carry the corrected request.

    (The end of the request would roll it back anyway; this also holds when the session lives
    on, as in a CLI command or a test.)
    """
    if record.resource_id is not None or record not in session:
        return  # committed with a resource, or already rolled back
    try:
        session.delete(record)
        session.flush()
    except Exception:
        session.rollback()


def _claim_or_find(
    session: Session, user_id: int, operation: str, key: str, fingerprint: str
) -> tuple[IdempotencyKey, bool]:
    """The committed record of an earlier request (False), or this request's claim (True)."""
    settings = current_settings()
    ttl = timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    for _ in range(2):
        now = utcnow()
        found = service.find_key(session, user_id=user_id, operation=operation, key=key, now=now)
        if found is not None:
            return found, False
        claimed = service.claim_key(
            session,
            user_id=user_id,
            operation=operation,
            key=key,
            fingerprint=fingerprint,
            now=now,
            ttl=ttl,
        )
        if claimed is not None:
            return claimed, True
        # Lost the race: the winner has committed by now (the INSERT waited for it); read it.
    raise Conflict(
        "A request with this Idempotency-Key is still in progress; retry shortly.",
        code="idempotency_key_in_use",
    )


def _replay(
    session: Session,
    record: IdempotencyKey,
    fingerprint: str,
    user_id: int,
    resource: type[Any],
    headers: Callable[[Any], Mapping[str, str]] | None,
) -> tuple[Any, dict[str, str]]:
    if record.fingerprint != fingerprint:
        raise ValidationFailed(
            f"This {HEADER} was already used with a different request; use a new key.",
            code="idempotency_key_reused",
        )
    if record.resource_id is None:
        raise Conflict(
            "A request with this Idempotency-Key is still in progress; retry shortly.",
            code="idempotency_key_in_use",
        )
    created = session.get(resource, service.resource_identity(resource, record.resource_id))
    if created is None or getattr(created, "owner_id", user_id) != user_id:
        raise NotFound(f"What the first request with this {HEADER} created no longer exists.")
    replay_headers = dict(headers(created)) if headers is not None else {}
    replay_headers[REPLAYED_HEADER] = "true"
    return created, replay_headers


def _canonical_body() -> Any:
    """The request body in a form that ignores key order and multipart boundaries."""
    if request.is_json:
        return {"json": request.get_json(silent=True)}
    if request.mimetype == "multipart/form-data":
        files = []
        for name, upload in request.files.items(multi=True):
            upload.stream.seek(0)
            digest = hashlib.file_digest(upload.stream, "sha256").hexdigest()  # type: ignore[arg-type]
            upload.stream.seek(0)
            files.append([name, upload.filename, digest])
        return {"form": sorted(request.form.items(multi=True)), "files": sorted(files)}
    return {"sha256": hashlib.sha256(request.get_data(cache=True)).hexdigest()}
