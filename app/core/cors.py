"""CORS for the origins in ``CORS_ALLOWED_ORIGINS`` only (none by default).

A listed origin is echoed back (with ``Vary: Origin``, so caches keep one answer per origin);
any other origin gets no CORS header, and the browser withholds the response from its page.
``*`` allows every origin and never sends ``Access-Control-Allow-Credentials``.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from app.config import Settings

ALLOWED_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID"
)
# Beyond the CORS-safelisted ones, what the API's clients read from responses.
EXPOSED_HEADERS = (
    "ETag, Location, Retry-After, X-Request-ID, Content-Disposition, Idempotent-Replayed, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)


def init_cors(app: Flask, settings: Settings) -> None:
    """Answer preflights and add CORS headers for allowed origins (nothing when none is set)."""
    origins = settings.cors_allowed_origins
    if not origins:
        return
    any_origin = "*" in origins
    credentials = settings.CORS_ALLOW_CREDENTIALS and not any_origin

    def allowed(origin: str | None) -> bool:
        return bool(origin) and (any_origin or str(origin).lower().rstrip("/") in origins)

    def allow(response: Response, origin: str) -> None:
        response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        if credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"

    @app.before_request
    def _answer_preflight() -> Response | None:
        origin = request.headers.get("Origin")
        if (
            request.method != "OPTIONS"
            or "Access-Control-Request-Method" not in request.headers
            or not allowed(origin)
            or request.url_rule is None  # an unknown URL stays a 404
        ):
            return None
        try:
            methods = app.url_map.bind_to_environ(request.environ).allowed_methods()
        except HTTPException:
            return None
        response = app.response_class(status=204)
        allow(response, str(origin))
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(settings.CORS_MAX_AGE_SECONDS)
        return response

    @app.after_request
    def _add_cors_headers(response: Response) -> Response:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if allowed(origin) and "Access-Control-Allow-Origin" not in response.headers:
            allow(response, str(origin))
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
