"""The application factory: config -> extensions -> blueprints -> errors -> CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.config import Settings, load_settings
from app.core.api import Api, require_json_body
from app.core.application import ServiceFlask
from app.core.auth import init_auth
from app.core.client_address import init_client_address, init_docs_access
from app.core.cors import init_cors
from app.core.json import SafeJSONProvider
from app.core.limits import init_rate_limits
from app.core.logging import configure_logging
from app.core.requests import init_request_ids
from app.core.security import PasswordHashing, TokenCodec
from app.core.security_headers import init_security_headers
from app.extensions import db
from app.observability import init_observability

API_PREFIX = "/api/v1"


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``config`` (settings, or overrides of the environment's settings)."""
    settings = config if isinstance(config, Settings) else load_settings(**dict(config or {}))
    app = ServiceFlask(__name__, instance_path=str(settings.INSTANCE_PATH))
    app.json = SafeJSONProvider(app)
    app.config.from_mapping(settings.flask_config())
    app.config.update(openapi_config(settings))
    app.extensions["settings"] = settings
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    if settings.APP_ENV == "production":
        app.debug = False  # whatever the environment says: the debugger runs callers' code

    register_extensions(app, settings)
    register_blueprints(app)
    init_rate_limits(app, settings)  # binds the limits the registered routes declare
    register_cli(app)
    register_background(app, settings)
    return app


def openapi_config(settings: Settings) -> dict[str, Any]:
    """flask-smorest settings: the document at /api/v1/openapi.json, Swagger UI at /docs."""
    config: dict[str, Any] = {
        "API_TITLE": settings.SERVICE_NAME,
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "api/v1/openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": (
                    "Tasks and users REST API. Log in with POST /api/v1/auth/login, then click "
                    "Authorize and paste the access token. Every error has the shape of the "
                    "Error schema."
                ),
            },
        },
    }
    if settings.DOCS_ENABLED:
        config.update(
            {
                "OPENAPI_SWAGGER_UI_PATH": "docs",
                # Assets ship in app/static/swagger-ui, so the page works with no internet.
                "OPENAPI_SWAGGER_UI_URL": "/static/swagger-ui/",
                "OPENAPI_SWAGGER_UI_CONFIG": {
                    "validatorUrl": None,
                    "persistAuthorization": True,
                    "displayRequestDuration": True,
                },
            }
        )
    return config


def register_extensions(app: Flask, settings: Settings) -> None:
    """Bind the unbound singletons of ``app.extensions`` to this app."""
    from app.users.auth_service import resolve_principal

    db.init_app(app, settings)
    codec = TokenCodec(settings)
    app.extensions["token_codec"] = codec
    app.extensions["password_hashing"] = PasswordHashing(settings)
    init_auth(app, lambda claims: resolve_principal(session=db.session(), claims=claims))
    init_request_ids(app)
    init_observability(app, settings)
    require_json_body(app)
    # flask-smorest's Api keeps per-app state (the spec), so each app gets its own.
    app.extensions["api"] = Api(app)
    init_client_address(app, settings)
    init_security_headers(app, settings)
    # Before the rate limiter's hook (added later): preflights and hidden docs cost no budget.
    init_cors(app, settings)
    init_docs_access(app, settings)


def register_blueprints(app: Flask) -> None:
    """Mount every feature's routes; the API under /api/v1, health probes at the root."""
    from app.health.routes import blp as health_blp
    from app.jobs.routes import blp as jobs_blp
    from app.tasks.routes import blp as tasks_blp
    from app.users.auth_routes import blp as auth_blp
    from app.users.routes import blp as users_blp
    from app.webhooks.routes import blp as webhooks_blp

    api: Api = app.extensions["api"]
    for blueprint in (auth_blp, users_blp, tasks_blp, webhooks_blp, jobs_blp):
        api.register_blueprint(blueprint, url_prefix=f"{API_PREFIX}{blueprint.url_prefix}")
    api.register_blueprint(health_blp)


def register_background(app: Flask, settings: Settings) -> None:
    """Celery (tasks run in this app's context) and the outbox kick after each commit."""
    from app.celery_app import celery_init_app
    from app.events.relay import install_outbox_kick

    celery_init_app(app, settings)
    install_outbox_kick(app)


def register_cli(app: Flask) -> None:
    """Add ``flask db ...`` and ``flask users ...``."""
    from app.cli import db_cli
    from app.users.cli import users_cli

    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
