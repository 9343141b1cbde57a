"""Request ids: accepted from ``X-Request-ID`` when well-formed, generated otherwise."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request or background task being handled, if any."""
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    """Bind ``value`` as the current request id (used by background tasks)."""
    _request_id.set(value)


def new_request_id() -> str:
    """A fresh random request id."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """``candidate`` when it is well-formed, else a new id (clients cannot inject log lines)."""
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()


def init_request_ids(app: Flask) -> None:
    """Give every request an id and return it in the ``X-Request-ID`` header."""

    @app.before_request
    def _bind_request_id() -> None:
        g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        _request_id.set(g.request_id)

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        request_id = g.get("request_id") or current_request_id()
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    @app.teardown_request
    def _unbind_request_id(_exc: BaseException | None) -> None:
        _request_id.set(None)
