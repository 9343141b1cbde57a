"""Typed settings: the only module that reads the environment.

One class per profile, chosen by ``APP_ENV`` (``development`` by default, ``testing``,
``production``). Production refuses to start on an unsafe value with one line naming the setting.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_BYTES = 32
SUPPORTED_DATABASES = frozenset({"postgresql", "sqlite"})
# The settings that each hold a rate limit ("10/minute;100/hour"); the benchmark and the
# fuzzing stack raise them all.
RATE_LIMIT_SETTINGS = (
    "RATELIMIT_DEFAULT",
    "RATELIMIT_LOGIN_PER_IP",
    "RATELIMIT_LOGIN_PER_ACCOUNT",
    "RATELIMIT_REGISTER_PER_IP",
    "RATELIMIT_REFRESH_PER_IP",
    "RATELIMIT_PASSWORD_RESET_PER_IP",
    "RATELIMIT_PASSWORD_RESET_PER_EMAIL",
    "RATELIMIT_JOB_CREATE_PER_USER",
)

Environment = Literal["development", "testing", "production"]


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names it in one line."""


def normalize_database_url(raw: str) -> URL:
    """Parse a database URL, choosing psycopg2 for the URLs platforms hand out.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3, and Heroku-style platforms still give
    ``postgres://``; both mean "PostgreSQL through psycopg2" here.
    """
    url = make_url(raw)
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg2")
    return url


class Settings(BaseSettings):
    """Settings shared by every profile; each field is read from the variable of the same name."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    APP_ENV: Environment = "development"
    SERVICE_NAME: str = "flask-service-template"
    INSTANCE_PATH: Path = PROJECT_ROOT / "instance"

    SECRET_KEY: SecretStr | None = None
    JWT_SECRET_KEY: SecretStr | None = None
    JWT_ISSUER: str = "flask-service-template"
    JWT_AUDIENCE: str = "flask-service-template-api"
    ACCESS_TOKEN_TTL_SECONDS: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    REFRESH_TOKEN_TTL_SECONDS: int = Field(default=14 * 24 * 3600, ge=60)

    DATABASE_URL: str = ""
    DATABASE_POOL_SIZE: int = Field(default=5, ge=1, le=200)
    DATABASE_MAX_OVERFLOW: int = Field(default=10, ge=0, le=200)
    DATABASE_POOL_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    DATABASE_CONNECT_TIMEOUT_SECONDS: int = Field(default=5, ge=1)
    DATABASE_ECHO: bool = False
    HEALTH_CHECK_TIMEOUT_MS: int = Field(default=1000, ge=50)

    PASSWORD_HASH_TIME_COST: int = Field(default=3, ge=1)
    PASSWORD_HASH_MEMORY_KIB: int = Field(default=64 * 1024, ge=8)
    PASSWORD_HASH_PARALLELISM: int = Field(default=4, ge=1)

    MAX_CONTENT_LENGTH: int = Field(default=1024 * 1024, ge=1024)
    DEFAULT_PAGE_SIZE: int = Field(default=20, ge=1, le=100)
    MAX_PAGE_SIZE: int = Field(default=100, ge=1, le=1000)

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["json", "text"] = "json"

    DOCS_ENABLED: bool = True
    # /docs and /api/v1/openapi.json only for these comma-separated CIDRs (others get 404);
    # empty: everyone. Matched against the client address (see PROXY_FIX_X_FOR).
    DOCS_ALLOWED_IPS: str = ""

    # Production edge (app.core.limits, client_address, security_headers, cors).
    # Proxies in front of the app whose X-Forwarded-For entry is trusted, counted from the
    # right. 0: the header is ignored, so a client cannot choose its own address; 1 behind
    # one load balancer (nginx, an Ingress).
    PROXY_FIX_X_FOR: int = Field(default=0, ge=0, le=5)
    PROXY_FIX_X_PROTO: int = Field(default=0, ge=0, le=5)  # the same for X-Forwarded-Proto
    FLASK_DEBUG: bool = False  # Flask debug mode (development only: its debugger runs code)
    RATELIMIT_ENABLED: bool = True  # false: nothing is limited and no X-RateLimit-* is sent
    # Counters shared by every process and replica. Empty: REDIS_URL when set, else memory://
    # (per process: development and tests only; production refuses it).
    RATELIMIT_STORAGE_URL: str = ""
    # Connect and read timeout of the counter store: a dead Redis costs milliseconds, and
    # requests are then limited per process until it answers again.
    RATELIMIT_STORAGE_TIMEOUT_SECONDS: float = Field(default=0.3, gt=0, le=5)
    RATELIMIT_STRATEGY: Literal["fixed-window", "moving-window", "sliding-window-counter"] = (
        "fixed-window"
    )
    RATELIMIT_HEADERS_ENABLED: bool = True  # X-RateLimit-Limit/Remaining/Reset on responses
    # Limits are "N/second|minute|hour|day", several joined by ";"; empty turns one off.
    RATELIMIT_DEFAULT: str = "600/minute"  # all of /api/v1, per user (else per client address)
    RATELIMIT_LOGIN_PER_IP: str = "20/minute"  # POST /auth/login per client address
    RATELIMIT_LOGIN_PER_ACCOUNT: str = "10/minute;50/hour"  # POST /auth/login per email
    RATELIMIT_REGISTER_PER_IP: str = "20/hour"  # POST /auth/register per client address
    RATELIMIT_REFRESH_PER_IP: str = "60/minute"  # POST /auth/refresh per client address
    RATELIMIT_PASSWORD_RESET_PER_IP: str = "10/hour"  # reset requests per client address
    RATELIMIT_PASSWORD_RESET_PER_EMAIL: str = "3/hour"  # reset requests per target email
    RATELIMIT_JOB_CREATE_PER_USER: str = "30/hour"  # POST /jobs per user
    # Browser origins allowed to call the API (comma-separated "https://app.example.com");
    # empty: no CORS headers at all. "*" allows any origin without credentials (not in
    # production).
    CORS_ALLOWED_ORIGINS: str = ""
    CORS_ALLOW_CREDENTIALS: bool = False  # send Access-Control-Allow-Credentials (never with *)
    CORS_MAX_AGE_SECONDS: int = Field(default=600, ge=0, le=86400)  # preflight cache lifetime

    # Background work (Celery). The broker is CELERY_BROKER_URL, else REDIS_URL.
    REDIS_URL: str = ""
    CELERY_BROKER_URL: str = ""
    REDIS_KEY_PREFIX: str = ""
    REDIS_SOCKET_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)
    CELERY_VISIBILITY_TIMEOUT_SECONDS: int = Field(default=3600, ge=60)
    CELERY_TASK_SOFT_TIME_LIMIT_SECONDS: int = Field(default=300, ge=1)
    CELERY_TASK_TIME_LIMIT_SECONDS: int = Field(default=330, ge=1)
    CELERY_MAX_COUNTDOWN_SECONDS: int = Field(default=300, ge=1)
    # Remote control (celery inspect, Flower); off so a Redis restart cannot crash a worker.
    CELERY_REMOTE_CONTROL_ENABLED: bool = False
    OUTBOX_KICK_ENABLED: bool = True
    OUTBOX_SWEEP_INTERVAL_SECONDS: float = Field(default=5.0, gt=0)
    OUTBOX_SWEEP_GRACE_SECONDS: float = Field(default=2.0, ge=0)
    OUTBOX_SWEEP_BATCH: int = Field(default=500, ge=1)
    # A published event whose dispatch has not completed after this long is published again.
    OUTBOX_REDISPATCH_AFTER_SECONDS: float = Field(default=120.0, gt=0)
    OUTBOX_RETENTION_DAYS: int = Field(default=7, ge=1)
    DELIVERY_SWEEP_INTERVAL_SECONDS: float = Field(default=10.0, gt=0)
    CLEANUP_INTERVAL_SECONDS: float = Field(default=3600.0, gt=0)

    # Webhooks (app.webhooks).
    # Encrypts stored signing secrets; comma-separated keys rotate (the first encrypts, all
    # decrypt). Unset: derived from SECRET_KEY, so rotating SECRET_KEY would orphan the secrets.
    WEBHOOK_SECRET_KEY: SecretStr | None = None
    WEBHOOK_MAX_PER_USER: int = Field(default=20, ge=1)  # endpoints one user may register
    WEBHOOK_MAX_ATTEMPTS: int = Field(default=8, ge=1, le=100)  # then the delivery is dead
    WEBHOOK_BACKOFF_BASE_SECONDS: float = Field(default=60.0, gt=0)  # first retry's ceiling
    WEBHOOK_BACKOFF_CAP_SECONDS: float = Field(default=6 * 3600.0, gt=0)  # longest retry delay
    WEBHOOK_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)  # TCP (and TLS) set-up
    WEBHOOK_READ_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)  # waiting for the response
    WEBHOOK_MAX_RESPONSE_BYTES: int = Field(default=64 * 1024, ge=0)  # read no more than this
    # A claimed delivery becomes claimable again after this long (a killed worker's work).
    WEBHOOK_LEASE_SECONDS: float = Field(default=60.0, gt=0)
    WEBHOOK_SWEEP_BATCH: int = Field(default=500, ge=1)  # due deliveries enqueued per sweep
    WEBHOOK_ALLOWED_PORTS: tuple[int, ...] = (80, 443, 8080, 8443)  # target ports (JSON list)
    WEBHOOK_REQUIRE_HTTPS: bool = False  # refuse http:// targets (production forces it)
    # Tests only: deliver to loopback/private addresses on any port. Production refuses it.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False
    # Host names (exactly as in webhook URLs, JSON list) whose private-network addresses
    # (10/8, 172.16/12, 192.168/16, fc00::/7) deliveries may reach: the operator's explicit
    # choice of a receiver on the same private network, e.g. a compose service. Loopback,
    # link-local and metadata addresses stay refused; the port and https rules still apply.
    WEBHOOK_ALLOWED_PRIVATE_HOSTS: tuple[str, ...] = ()
    # Circuit breaker: an endpoint whose every attempt failed for this long is disabled.
    WEBHOOK_DISABLE_AFTER_SECONDS: float = Field(default=24 * 3600.0, gt=0)
    WEBHOOK_DELIVERY_RETENTION_DAYS: int = Field(default=30, ge=1)  # finished deliveries kept

    # Notifications (app.notifications): email, password reset, due-task reminders, clean-up.
    MAIL_BACKEND: Literal["smtp", "console"] = "console"  # console: print + .eml under instance/
    MAIL_FROM: str = "Flask Service Template <no-reply@example.com>"  # the From header
    SMTP_HOST: str = ""  # required with MAIL_BACKEND=smtp
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)  # 587 STARTTLS, 465 SSL, 25 relay
    SMTP_SECURITY: Literal["none", "starttls", "ssl"] = "starttls"  # TLS verifies the cert
    SMTP_USERNAME: str = ""  # log in when set (only after TLS unless SMTP_SECURITY=none)
    SMTP_PASSWORD: SecretStr | None = None  # the SMTP login's password
    SMTP_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)  # per socket operation
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"  # where links in emails point (the web app)
    EMAIL_MAX_ATTEMPTS: int = Field(default=5, ge=1, le=100)  # then the email is dead
    EMAIL_BACKOFF_BASE_SECONDS: float = Field(default=30.0, gt=0)  # first retry's ceiling
    EMAIL_BACKOFF_CAP_SECONDS: float = Field(default=3600.0, gt=0)  # longest retry delay
    # A claimed email becomes claimable again after this long (a killed worker's work); longer
    # than a whole SMTP conversation of timeouts.
    EMAIL_LEASE_SECONDS: float = Field(default=120.0, gt=0)
    EMAIL_SWEEP_BATCH: int = Field(default=500, ge=1)  # due emails enqueued per sweep
    # The sweep leaves a due email this long to the message already queued for it.
    EMAIL_SWEEP_GRACE_SECONDS: float = Field(default=30.0, ge=0)
    EMAIL_RETENTION_DAYS: int = Field(default=30, ge=1)  # sent, failed and dead emails kept
    PASSWORD_RESET_TTL_SECONDS: int = Field(default=30 * 60, ge=60, le=24 * 3600)  # link lifetime
    TASK_REMINDER_INTERVAL_SECONDS: float = Field(default=300.0, gt=0)  # how often beat looks
    TASK_REMINDER_LEAD_SECONDS: float = Field(default=3600.0, gt=0)  # remind this long before due
    TASK_REMINDER_BATCH: int = Field(default=500, ge=1)  # tasks read per query
    AUTH_SESSION_RETENTION_DAYS: int = Field(default=7, ge=0)  # expired login sessions kept
    CLEANUP_BATCH: int = Field(default=1000, ge=1)  # rows deleted per statement

    # Jobs (app.jobs) and Idempotency-Key (app.idempotency).
    # Largest import file; below MAX_CONTENT_LENGTH, which caps the whole multipart request.
    JOB_MAX_UPLOAD_BYTES: int = Field(default=1_000_000, ge=1)
    JOB_MAX_RESULT_BYTES: int = Field(default=100 * 1024 * 1024, ge=1)  # larger exports fail
    JOB_BATCH_SIZE: int = Field(default=500, ge=1, le=10_000)  # rows per transaction and progress
    # A running job whose worker stopped renewing its lease this long ago is run again.
    JOB_LEASE_SECONDS: float = Field(default=60.0, gt=0)
    JOB_MAX_ATTEMPTS: int = Field(default=3, ge=1)  # runs cut short by a dead worker, then failed
    # A queued job not started this long after it was enqueued is enqueued again by the sweep.
    JOB_QUEUED_GRACE_SECONDS: float = Field(default=60.0, ge=0)
    JOB_SWEEP_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)  # how often the sweep runs
    JOB_SWEEP_BATCH: int = Field(default=100, ge=1)  # stale jobs re-enqueued per sweep
    JOB_RESULT_RETENTION_SECONDS: int = Field(default=7 * 24 * 3600, ge=60)  # files then deleted
    IDEMPOTENCY_KEY_TTL_SECONDS: int = Field(default=24 * 3600, ge=60)  # a key replays this long

    # Observability (app.observability): request log, Prometheus metrics, Sentry, traces.
    # GET /metrics only for these comma-separated addresses or CIDRs (everyone else gets 404,
    # matched after PROXY_FIX_X_FOR); empty: nobody.
    METRICS_ALLOWED_IPS: str = "127.0.0.1,::1"
    # Folder of per-process metric files, so several processes report one sum; gunicorn.conf.py
    # sets it. prometheus_client reads it from the process environment itself (.env is not enough).
    PROMETHEUS_MULTIPROC_DIR: str = ""
    WORKER_METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)  # worker's metrics port
    WORKER_METRICS_HOST: str = "0.0.0.0"  # the address that port listens on  # noqa: S104
    SENTRY_DSN: SecretStr | None = None  # report errors to Sentry (requirements-observability.txt)
    SENTRY_ENVIRONMENT: str = ""  # Sentry's environment name; empty: APP_ENV
    SENTRY_TRACES_SAMPLE_RATE: float = Field(default=0.0, ge=0, le=1)  # requests traced by Sentry
    # OpenTelemetry traces over OTLP/HTTP to this collector (http://otel-collector:4318);
    # empty: off.
    OTEL_EXPORTER_OTLP_ENDPOINT: str = ""

    @field_validator("REDIS_URL", "CELERY_BROKER_URL")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        if value and value != "memory://":  # memory:// is kombu's in-process broker (tests)
            check_url(value, {"redis", "rediss", "sqla+sqlite"})
        return value

    @field_validator(*RATE_LIMIT_SETTINGS)
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(
                    'is not a rate limit such as "20/minute" or "10/minute;50/hour"'
                ) from exc
        return value.strip()

    @field_validator("RATELIMIT_STORAGE_URL")
    @classmethod
    def _rate_limit_storage_parses(cls, value: str) -> str:
        if value and value != "memory://":
            check_url(value, {"redis", "rediss"})
        return value

    @property
    def ratelimit_storage_url(self) -> str:
        """Where rate-limit counters live: the setting, else ``REDIS_URL``, else memory."""
        return self.RATELIMIT_STORAGE_URL or self.REDIS_URL or "memory://"

    @field_validator("CORS_ALLOWED_ORIGINS")
    @classmethod
    def _origins_parse(cls, value: str) -> str:
        for origin in split_list(value):
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return value

    @property
    def cors_allowed_origins(self) -> frozenset[str]:
        """The allowed origins, lower-cased and without a trailing slash (browsers send none)."""
        return frozenset(origin.lower() for origin in split_list(self.CORS_ALLOWED_ORIGINS))

    @field_validator("DOCS_ALLOWED_IPS", "METRICS_ALLOWED_IPS")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for network in split_list(value):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not an address or CIDR network") from exc
        return value

    @property
    def docs_allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks allowed to read the API documentation (empty: everyone)."""
        return tuple(
            ipaddress.ip_network(network, strict=False)
            for network in split_list(self.DOCS_ALLOWED_IPS)
        )

    @field_validator("OTEL_EXPORTER_OTLP_ENDPOINT")
    @classmethod
    def _otlp_endpoint_parses(cls, value: str) -> str:
        if value:
            check_url(value, {"http", "https"})
        return value

    @model_validator(mode="after")
    def _worker_metrics_need_multiprocess(self) -> Settings:
        if self.WORKER_METRICS_PORT is not None and not self.PROMETHEUS_MULTIPROC_DIR:
            raise ValueError(
                "WORKER_METRICS_PORT: needs PROMETHEUS_MULTIPROC_DIR (a writable folder), so the "
                "worker's processes report one sum"
            )
        return self

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _public_base_url_parses(cls, value: str) -> str:
        check_url(value, {"http", "https"})
        return value.rstrip("/")  # links append "/path"

    @property
    def broker_url(self) -> str:
        """Where Celery messages go: ``CELERY_BROKER_URL``, else ``REDIS_URL``."""
        return self.CELERY_BROKER_URL or self.REDIS_URL

    @property
    def broker_is_redis(self) -> bool:
        """True when the broker is Redis (production); False for the embedded SQLite broker."""
        return self.broker_url.startswith(("redis://", "rediss://"))

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        if value:
            try:
                url = normalize_database_url(value)
            except Exception as exc:  # sqlalchemy raises ArgumentError with a long text
                raise ValueError("is not a valid database URL") from exc
            # Any other scheme would fail later, at the first query, with a long traceback.
            if url.get_backend_name() not in SUPPORTED_DATABASES:
                raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @property
    def database_url(self) -> URL:
        """The SQLAlchemy URL, with the driver chosen for PostgreSQL."""
        return normalize_database_url(self.DATABASE_URL)

    @property
    def is_sqlite(self) -> bool:
        """True when the embedded SQLite database is in use."""
        return self.database_url.get_backend_name() == "sqlite"

    @property
    def jwt_key(self) -> str:
        """The HS256 signing key: ``JWT_SECRET_KEY``, else ``SECRET_KEY``."""
        key = self.JWT_SECRET_KEY or self.SECRET_KEY
        if key is None:  # validators guarantee a key; this keeps mypy honest
            raise ConfigError("SECRET_KEY: is not set")
        return key.get_secret_value()

    def flask_config(self) -> dict[str, Any]:
        """The subset Flask and its extensions read from ``app.config``."""
        secret = self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else ""
        return {
            "ENV_NAME": self.APP_ENV,
            "SECRET_KEY": secret,
            "TESTING": self.APP_ENV == "testing",
            "DEBUG": self.FLASK_DEBUG and self.APP_ENV != "production",
            "MAX_CONTENT_LENGTH": self.MAX_CONTENT_LENGTH,
            "JSON_SORT_KEYS": False,
        }


class DevelopmentSettings(Settings):
    """``make run`` on a laptop: SQLite under ``instance/``, a generated secret, ``.env`` read."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, env_file=".env"
    )
    LOG_FORMAT: Literal["json", "text"] = "text"

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, data: Any) -> Any:
        data = dict(data)
        instance = Path(data.get("INSTANCE_PATH") or PROJECT_ROOT / "instance")
        if not data.get("DATABASE_URL"):
            data["DATABASE_URL"] = f"sqlite:///{instance / 'app.db'}"
        if not data.get("SECRET_KEY"):
            data["SECRET_KEY"] = _development_secret(instance)
        if not data.get("CELERY_BROKER_URL") and not data.get("REDIS_URL"):
            # A real broker with nothing installed: kombu's SQLAlchemy transport on a SQLite file.
            data["CELERY_BROKER_URL"] = f"sqla+sqlite:///{instance / 'celery-broker.sqlite'}"
        return data


class TestingSettings(Settings):
    """The test suite; the fixtures pass the database URL explicitly."""

    SECRET_KEY: SecretStr | None = SecretStr("testing-secret-key-not-for-production-use")
    DATABASE_URL: str = "sqlite://"
    PASSWORD_HASH_TIME_COST: int = 1
    PASSWORD_HASH_MEMORY_KIB: int = 8
    PASSWORD_HASH_PARALLELISM: int = 1
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    CELERY_BROKER_URL: str = "memory://"
    OUTBOX_KICK_ENABLED: bool = False  # unit tests run inside a rolled-back transaction
    # High, so only the tests that lower a limit meet it (each app has its own counters).
    RATELIMIT_DEFAULT: str = "100000/minute"
    RATELIMIT_LOGIN_PER_IP: str = "100000/minute"
    RATELIMIT_LOGIN_PER_ACCOUNT: str = "100000/minute"
    RATELIMIT_REGISTER_PER_IP: str = "100000/minute"
    RATELIMIT_REFRESH_PER_IP: str = "100000/minute"
    RATELIMIT_PASSWORD_RESET_PER_IP: str = "100000/minute"
    RATELIMIT_PASSWORD_RESET_PER_EMAIL: str = "100000/minute"
    RATELIMIT_JOB_CREATE_PER_USER: str = "100000/minute"


class ProductionSettings(Settings):
    """Real deployments: every unsafe default is refused."""

    WEBHOOK_REQUIRE_HTTPS: bool = True
    MAIL_BACKEND: Literal["smtp", "console"] = "smtp"

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> ProductionSettings:
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            value: SecretStr | None = getattr(self, name)
            if name == "SECRET_KEY" and value is None:
                raise ValueError(f"{name}: must be set in production")
            if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"{name}: must be at least {MIN_SECRET_BYTES} bytes in production")
        if not self.DATABASE_URL:
            raise ValueError("DATABASE_URL: must be set in production")
        if self.is_sqlite:
            raise ValueError("DATABASE_URL: SQLite is for development only; use PostgreSQL")
        if not self.broker_url:
            raise ValueError("REDIS_URL: must be set in production (the Celery broker)")
        if not self.broker_is_redis:
            raise ValueError(
                "CELERY_BROKER_URL: the embedded broker is for development only; use redis://"
            )
        if self.WEBHOOK_ALLOW_PRIVATE_TARGETS:
            raise ValueError(
                "WEBHOOK_ALLOW_PRIVATE_TARGETS: is for tests only; it opens internal hosts to SSRF"
            )
        if not self.WEBHOOK_REQUIRE_HTTPS:
            raise ValueError("WEBHOOK_REQUIRE_HTTPS: must be true in production")
        if self.MAIL_BACKEND == "console":
            raise ValueError("MAIL_BACKEND: console is for development only; use smtp")
        if not self.SMTP_HOST:
            raise ValueError("SMTP_HOST: must be set in production (MAIL_BACKEND=smtp)")
        if self.FLASK_DEBUG:
            raise ValueError(
                "FLASK_DEBUG: debug mode runs code sent by any caller; never in production"
            )
        if self.ratelimit_storage_url == "memory://":
            raise ValueError(
                "RATELIMIT_STORAGE_URL: memory:// counts per process; use Redis in production"
            )
        if "*" in self.cors_allowed_origins:
            raise ValueError("CORS_ALLOWED_ORIGINS: * lets any site call the API; list the origins")
        public = urlsplit(self.PUBLIC_BASE_URL)
        if public.scheme != "https" or public.hostname in {None, "localhost", "127.0.0.1", "::1"}:
            raise ValueError(
                "PUBLIC_BASE_URL: must be the public https:// address in production (email links)"
            )
        return self


PROFILES: dict[str, type[Settings]] = {
    "development": DevelopmentSettings,
    "testing": TestingSettings,
    "production": ProductionSettings,
}


def _development_secret(instance: Path) -> str:
    """A random key kept in ``instance/`` so development tokens survive a restart."""
    path = instance / "dev-secret-key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def split_list(value: str) -> list[str]:
    """The non-empty items of a comma-separated setting, stripped (a trailing "/" dropped)."""
    return [item.strip().rstrip("/") for item in value.split(",") if item.strip()]


def check_url(value: str, schemes: set[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is a URL with one of ``schemes``."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        allowed = ", ".join(f"{scheme}://" for scheme in sorted(schemes))
        raise ValueError(f"is not a valid URL (expected {allowed})")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings of the profile named by ``APP_ENV`` (or ``overrides``)."""
    env = str(overrides.get("APP_ENV") or os.environ.get("APP_ENV") or "development")
    profile = PROFILES.get(env)
    if profile is None:
        raise ConfigError(f"APP_ENV: must be one of {', '.join(PROFILES)} (got {env!r})")
    try:
        return profile(**{**overrides, "APP_ENV": env})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    messages = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        location = ".".join(str(part) for part in error["loc"])
        messages.append(message if not location else f"{location}: {message}")
    return "; ".join(messages)


def current_settings() -> Settings:
    """The settings of the running app (inside an app context)."""
    from flask import current_app

    settings: Settings = current_app.extensions["settings"]
    return settings
