"""flask-smorest base classes: the Api with the project's error shape, and a Blueprint that
documents errors and authentication in one decorator each."""

from __future__ import annotations

import functools
import http
import json
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

import flask_smorest
import marshmallow as ma
from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, request
from flask_smorest.utils import prepare_response, resolve_schema_instance
from webargs.flaskparser import FlaskParser

from app.core.auth import current_principal, require_admin
from app.core.dumping import fast_dump
from app.core.errors import CODES, MESSAGES, handle_http_exception, register_error_handlers
from app.core.limits import RULES_ATTRIBUTE, Rate, describe_limits
from app.core.schemas import PageSize

F = TypeVar("F", bound=Callable[..., Any])

BEARER_SCHEME = "bearerAuth"
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorSchema(ma.Schema):
    """The one error shape of every non-2xx response."""

    code = ma.fields.String(
        required=True, metadata={"description": "Machine-readable code", "example": "not_found"}
    )
    status = ma.fields.Integer(
        required=True, metadata={"description": "HTTP status", "example": 404}
    )
    message = ma.fields.String(
        required=True,
        metadata={"description": "Human-readable message", "example": MESSAGES[404]},
    )
    errors = ma.fields.Dict(
        metadata={
            "description": "Per-field messages by location (json, query, headers), then field",
            "example": {"json": {"title": ["Missing data for required field."]}},
        }
    )
    request_id = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Id of the request, as in X-Request-ID",
            "example": "9f1c2b7e0d3a4c5b8e6f7a8b9c0d1e2f",
        },
    )


def error_example(status: int) -> dict[str, Any]:
    """An example body for ``status`` in the error shape."""
    example: dict[str, Any] = {
        "code": CODES.get(status, "error"),
        "status": status,
        "message": MESSAGES.get(status, "Error."),
        "request_id": "9f1c2b7e0d3a4c5b8e6f7a8b9c0d1e2f",
    }
    if status == 422:
        example["errors"] = {"json": {"title": ["Missing data for required field."]}}
    return example


class DocumentedRulesPlugin(BasePlugin):
    """Puts in the document what a schema's own validators check (``OPENAPI_RULES``), so
    clients (and the contract fuzzer) are not told a body is valid when the server refuses it."""

    def init_spec(self, spec: APISpec) -> None:
        """Keep the spec: schemas named in rules become components of it."""
        super().init_spec(spec)
        self._spec = spec

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> Any:
        """The schema's ``OPENAPI_RULES`` (see ``app.core.schemas.StrictSchema``)."""
        schema = kwargs.get("schema")
        schema_class = schema if isinstance(schema, type) else type(schema)
        rules = getattr(schema_class, "OPENAPI_RULES", {})
        return {keyword: self._resolve(value) for keyword, value in rules.items()}

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [self._resolve(item) for item in value]
        if isinstance(value, type) and issubclass(value, ma.Schema):
            plugin = next(p for p in self._spec.plugins if isinstance(p, MarshmallowPlugin))
            assert plugin.converter is not None  # set when the plugin joined the spec
            return plugin.converter.resolve_nested_schema(value)  # type: ignore[no-untyped-call]
        return value


class Api(flask_smorest.Api):  # type: ignore[misc]
    """flask-smorest's Api with the project's error shape and bearer scheme."""

    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, *, extra_plugins: Any = None, **kwargs: Any) -> None:
        plugins = [*(extra_plugins or ()), DocumentedRulesPlugin()]
        super()._init_spec(extra_plugins=plugins, **kwargs)

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        """Bind to ``app`` and declare the bearer security scheme."""
        super().init_app(app, *args, **kwargs)
        max_page_size = app.extensions["settings"].MAX_PAGE_SIZE

        def page_size_maximum(_converter: Any, field: Any, **_kwargs: Any) -> dict[str, Any]:
            # The cap is a setting, so this app's document states this app's value.
            return {"maximum": max_page_size} if isinstance(field, PageSize) else {}

        self.ma_plugin.converter.add_attribute_function(page_size_maximum)
        self.spec.components.security_scheme(
            BEARER_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from POST /api/v1/auth/login.",
            },
        )

    def _register_error_handlers(self) -> None:
        register_error_handlers(self._app)

    def _register_responses(self) -> None:
        # flask-smorest references these by itself (a 422 for every @arguments), so they get the
        # same description and example as the responses Blueprint.errors documents.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": MESSAGES.get(status, status.phrase)}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                response["example"] = error_example(status)
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Any other error, in the same shape", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def _register_pagination_header(self) -> None:
        # Lists carry their metadata in the body (core.schemas.page_schema), not in flask-smorest's
        # X-Pagination header, whose undocumented schema would otherwise appear in the spec.
        return

    def handle_http_exception(self, error: Any) -> Any:
        """Kept for flask-smorest callers; delegates to the project's handler."""
        return handle_http_exception(error)


def links(*operation_ids: str, **values: Any) -> dict[str, Any]:
    """OpenAPI links from a response to ``operation_ids``: where a client (or a stateful test)
    goes next. Each keyword is a parameter of the target, or ``requestBody``; values are runtime
    expressions such as ``$response.body#/id``."""
    body = values.pop("requestBody", None)
    result: dict[str, Any] = {}
    for operation_id in operation_ids:
        link: dict[str, Any] = {"operationId": operation_id}
        if values:
            link["parameters"] = dict(values)
        if body is not None:
            link["requestBody"] = body
        result[operation_id[0].upper() + operation_id[1:]] = link
    return result


class JSONArgumentsParser(FlaskParser):
    """webargs' parser, with too deeply nested JSON and numbers too long to convert reported as
    invalid JSON (400), not a 500, and unknown query parameters refused (422) like unknown body
    fields: a mistyped filter must not silently widen a list."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE}

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            # webargs turns a JSONDecodeError with a non-empty document into its 400.
            raise json.JSONDecodeError("JSON nested too deeply", doc="(nested)", pos=0) from None
        except json.JSONDecodeError:
            raise
        except ValueError:
            # An integer literal longer than Python's int conversion limit (4300 digits).
            raise json.JSONDecodeError("JSON number too long", doc="(number)", pos=0) from None


# Sent with every rate-limited response (Retry-After with a 429 only).
RATE_LIMIT_HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "example": 42},
    },
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the window of the tightest limit",
        "schema": {"type": "integer", "example": 20},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in that window",
        "schema": {"type": "integer", "example": 0},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time at which that window ends",
        "schema": {"type": "integer", "example": 1767225600},
    },
}


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """A flask-smorest Blueprint with ``errors``, ``auth`` and ``limit`` decorators.

    Every operation of a ``rate_limited`` blueprint (the default) counts against its caller's
    API budget (``RATELIMIT_DEFAULT``) and documents the 429 that follows; pass
    ``rate_limited=False`` for routes that must always answer (health probes).
    """

    ARGUMENTS_PARSER = JSONArgumentsParser()

    def __init__(self, *args: Any, rate_limited: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limited = rate_limited
        if rate_limited:
            # First, so the 429 is then rendered like any @blp.errors response.
            self._prepare_doc_cbks.insert(0, self._document_rate_limits)

    def response(self, status_code: Any, schema: Any = None, **kwargs: Any) -> Any:
        """flask-smorest's ``response``, dumping through the compiled form of ``schema``
        (``app.core.dumping``: the same output, a fraction of marshmallow's time)."""
        if schema is not None:
            schema = fast_dump(resolve_schema_instance(schema))
        return super().response(status_code, schema, **kwargs)

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """flask-smorest's ``arguments`` with the schema instantiated once: given a class,
        webargs instantiates it for every request, deep-copying its fields (4% of a list
        request's CPU)."""
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)

    def limit(self, *rates: Rate) -> Callable[[F], F]:
        """Apply ``rates`` to the decorated operation, on top of the API budget.

        The limits are bound when the app is created (``app.core.limits``), and are checked
        before authentication and argument parsing.
        """

        def decorator(func: F) -> F:
            setattr(func, RULES_ATTRIBUTE, (*getattr(func, RULES_ATTRIBUTE, ()), *rates))
            apidoc = deepcopy(getattr(func, "_apidoc", {}))
            apidoc["rate_limits"] = [*apidoc.get("rate_limits", []), *rates]
            func._apidoc = apidoc  # type: ignore[attr-defined]
            return func

        return decorator

    @staticmethod
    def _document_rate_limits(
        doc: dict[str, Any], doc_info: dict[str, Any], *, app: Flask, **kwargs: Any
    ) -> dict[str, Any]:
        settings = app.extensions["settings"]
        if settings.RATELIMIT_ENABLED:
            responses = doc_info.setdefault("response", {}).setdefault("responses", {})
            responses.setdefault(429, []).append(
                {
                    "schema": ErrorSchema(),
                    "description": describe_limits(settings, doc_info.get("rate_limits", [])),
                    "example": error_example(429),
                    "headers": RATE_LIMIT_HEADERS,
                    "content_type": None,
                }
            )
        return doc

    def errors(self, *statuses: int) -> Callable[[F], F]:
        """Document ``statuses`` as error responses of the decorated operation."""

        def decorator(func: F) -> F:
            for status in statuses:
                func = self.alt_response(
                    status,
                    schema=ErrorSchema,
                    description=MESSAGES.get(status, "Error"),
                    example=error_example(status),
                )(func)
            return func

        return decorator

    def auth(self, *, admin: bool = False) -> Callable[[F], F]:
        """Require a valid access token (and the admin role when ``admin``)."""

        def decorator(func: F) -> F:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                principal = current_principal()
                if admin:
                    require_admin(principal)
                return func(*args, **kwargs)

            wrapper = self.doc(security=[{BEARER_SCHEME: []}])(wrapper)
            statuses = (401, 403) if admin else (401,)
            return self.errors(*statuses)(wrapper)  # type: ignore[return-value]

        return decorator


def accepts_form_data(func: F) -> F:
    """Mark a view that takes ``multipart/form-data`` as well as JSON."""
    func._accepts_form_data = True  # type: ignore[attr-defined]
    return func


def require_json_body(app: Flask) -> None:
    """Refuse a body that is not JSON with 415 before any view parses it."""

    @app.before_request
    def _check_content_type() -> None:
        if request.method not in JSON_METHODS or not request.path.startswith("/api/"):
            return
        has_body = bool(request.content_length) or "chunked" in request.headers.get(
            "Transfer-Encoding", ""
        )
        if not has_body:
            return
        if request.is_json:
            return
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "_accepts_form_data", False) and request.mimetype == "multipart/form-data":
            return
        from werkzeug.exceptions import UnsupportedMediaType

        raise UnsupportedMediaType()
