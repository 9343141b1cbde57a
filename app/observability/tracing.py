"""Optional error reporting (Sentry) and distributed traces (OpenTelemetry); off unless configured.

Their packages are in ``requirements-observability.txt`` and imported only when a setting turns
them on, so a deployment that uses neither neither installs nor loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

from app.config import ConfigError, Settings
from app.extensions import db

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

INSTALL_HINT = "pip install -r requirements-observability.txt"
TRACER_PROVIDER_KEY = "tracer_provider"
# Probes and scrapes would be most of the traces and tell nothing.
UNTRACED_URLS = "health/live,health/ready,metrics"


def init_sentry(settings: Settings, **options: Any) -> bool:
    """Report errors to Sentry when ``SENTRY_DSN`` is set; True when it was set up.

    Unexpected errors are answered by the app's own handler, so they reach Sentry through the
    logging integration (the ``unhandled error`` record with its traceback), not Flask's signal.
    ``options`` go to ``sentry_sdk.init`` (tests pass a transport).
    """
    if settings.SENTRY_DSN is None:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.celery import CeleryIntegration
        from sentry_sdk.integrations.flask import FlaskIntegration
        from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
    except ImportError:
        raise ConfigError(
            f"SENTRY_DSN: is set but sentry-sdk is not installed ({INSTALL_HINT})"
        ) from None
    sentry_sdk.init(
        dsn=settings.SENTRY_DSN.get_secret_value(),
        environment=settings.SENTRY_ENVIRONMENT or settings.APP_ENV,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        # No user emails, IP addresses, cookies or headers beyond Sentry's scrubbed defaults,
        # and no bodies (passwords, tokens and user content travel in them).
        send_default_pii=False,
        max_request_body_size="never",
        integrations=[FlaskIntegration(), CeleryIntegration(), SqlalchemyIntegration()],
        **options,
    )
    return True


def init_tracing(
    app: Flask, settings: Settings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Trace Flask requests, SQLAlchemy queries and Celery tasks when an OTLP endpoint is set.

    Spans go in batches to ``OTEL_EXPORTER_OTLP_ENDPOINT`` over OTLP/HTTP (``/v1/traces``), or
    to ``exporter`` (tests). Sampling and other ``OTEL_*`` options are the SDK's own variables.
    """
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT and exporter is None:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT: is set but OpenTelemetry is not installed "
            f"({INSTALL_HINT})"
        ) from None
    if exporter is None:
        endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/")
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.SERVICE_NAME, "deployment.environment": settings.APP_ENV}
        )
    )
    # The batch thread is restarted in each forked gunicorn worker / Celery child by the SDK.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=provider, excluded_urls=UNTRACED_URLS
    )
    # The instrumentations declare older version ranges (SQLAlchemy < 2.1); the engine events
    # and Celery signals they hook are unchanged, which the tests check.
    SQLAlchemyInstrumentor().instrument(
        engine=app.extensions[db.ENGINE_KEY], tracer_provider=provider, skip_dep_check=True
    )
    CeleryInstrumentor().instrument(  # type: ignore[no-untyped-call]
        tracer_provider=provider, skip_dep_check=True
    )
    app.extensions[TRACER_PROVIDER_KEY] = provider
    return provider
