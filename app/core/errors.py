"""Domain exceptions and the single JSON error shape every error response uses.

Services raise these; ``register_error_handlers`` maps them, Werkzeug's HTTP errors, webargs
validation errors and unexpected exceptions to ``{code, status, message, errors?, request_id}``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from app.core.requests import current_request_id

logger = logging.getLogger(__name__)

# Machine-readable code for each status; clients switch on ``code``, people read ``message``.
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}

MESSAGES: dict[int, str] = {
    400: "The request could not be understood.",
    401: "Authentication is required.",
    403: "You are not allowed to do this.",
    404: "The resource was not found.",
    405: "The method is not allowed for this resource.",
    409: "The request conflicts with the current state of the resource.",
    410: "The resource is gone.",
    412: "The resource has changed since you read it.",
    413: "The request body is too large.",
    415: "The request body must be JSON (Content-Type: application/json).",
    422: "The request is invalid.",
    429: "Too many requests. Retry later.",
    500: "An unexpected error occurred.",
    503: "The service is temporarily unavailable. Retry later.",
}


class AppError(Exception):
    """Base of the domain exceptions; ``status`` and ``code`` choose the response."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or MESSAGES.get(self.status, "Error.")
        self.errors = errors
        self.headers = headers or {}
        if code is not None:
            self.code = code
        super().__init__(self.message)


class BadRequest(AppError):
    """The request is malformed (400)."""

    status, code = 400, "bad_request"


class Unauthorized(AppError):
    """Missing, invalid, expired or revoked credentials (401)."""

    status, code = 401, "unauthorized"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')


class Forbidden(AppError):
    """Authenticated, but the role lacks the right (403)."""

    status, code = 403, "forbidden"


class NotFound(AppError):
    """The resource does not exist or is not the caller's (404)."""

    status, code = 404, "not_found"


class Conflict(AppError):
    """A uniqueness or state conflict (409)."""

    status, code = 409, "conflict"


class PreconditionFailed(AppError):
    """``If-Match`` did not match the current version (412)."""

    status, code = 412, "precondition_failed"


class ValidationFailed(AppError):
    """A business rule rejected otherwise well-formed input (422)."""

    status, code = 422, "validation_error"


class ServiceUnavailable(AppError):
    """A dependency is down; the client may retry (503)."""

    status, code = 503, "service_unavailable"


def error_body(
    status: int, message: str, *, code: str | None = None, errors: Any = None
) -> dict[str, Any]:
    """The one error shape, as a dict."""
    body: dict[str, Any] = {
        "code": code or CODES.get(status, "error"),
        "status": status,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    body["request_id"] = current_request_id()
    return body


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response in the one error shape."""
    response = jsonify(error_body(status, message, code=code, errors=errors))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug / flask-smorest ``abort`` errors, including webargs' 422 with field messages."""
    status = error.code or 500
    if status >= 500:
        return _internal_error(error)
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message") or MESSAGES.get(status) or error.description or error.name
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
    if status == 429:
        message = MESSAGES[429]
    return error_response(status, str(message), errors=errors, headers=headers)


def handle_app_error(error: AppError) -> Response:
    """Domain exceptions raised by services."""
    return error_response(
        error.status, error.message, code=error.code, errors=error.errors, headers=error.headers
    )


def handle_database_unavailable(error: Exception) -> Response:
    """PostgreSQL down or the pool exhausted: a retryable 503, never a traceback."""
    logger.warning("database unavailable: %s", type(error).__name__)
    return error_response(503, MESSAGES[503], headers={"Retry-After": "5"})


def _internal_error(error: BaseException) -> Response:
    original = getattr(error, "original_exception", None) or error
    if isinstance(original, OperationalError | PoolTimeoutError) or (
        isinstance(original, DBAPIError) and original.connection_invalidated
    ):
        return handle_database_unavailable(original)
    logger.error("unhandled error", exc_info=original)
    return error_response(500, MESSAGES[500])


def handle_unexpected(error: Exception) -> Response:
    """Anything else: logged with its traceback, answered as a 500 with no internals."""
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    return _internal_error(error)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; flask-smorest's own HTTPException handler is replaced."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(PoolTimeoutError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
