"""Rate limits (flask-limiter): one budget per caller across the API, and stricter limits on
the routes attackers favour (login, registration, token refresh, password reset, job creation).

Counters live in Redis, shared by every worker and replica. When Redis does not answer, requests
are still served: the process counts in memory instead (the limits then hold per process), logs
a warning, tells its listeners (a metric), and returns to Redis once a probe gets an answer.

Each app gets its own ``Limiter`` (like its own ``Api``): flask-limiter keeps the storage and
the limits on the instance, so one instance shared by several apps (the test suite builds many)
would mix their settings. Routes declare their limits with ``Blueprint.limit``; ``init_rate_limits``
binds them to the app's limiter once every blueprint is registered.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_limiter import ApplicationLimit, Limiter
from limits import RateLimitItem
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from limits.util import WindowStats
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.config import Settings
from app.core.auth import bearer_claims

logger = logging.getLogger(__name__)

RULES_ATTRIBUTE = "_rate_limit_rules"
EXTENSION_KEY = "rate_limiter"
LISTENERS_KEY = "rate_limit_storage_error_listeners"
# One warning per process at most this often; the metric counts every failure.
STORAGE_WARNING_INTERVAL_SECONDS = 10.0
DEFAULT_SCOPE = "api"

# Returns the bucket of the current request, or None when the rule does not apply to it.
KeyFunction = Callable[[], str | None]


@dataclass(frozen=True)
class Rate:
    """A limit read from the setting ``setting``, counted per ``key()`` ("per ``per``")."""

    setting: str
    key: KeyFunction
    per: str


def client_address_key() -> str:
    """The client address (see ``PROXY_FIX_X_FOR`` for who may set it)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def caller_key() -> str:
    """The user of a valid access token, else the client address.

    flask-limiter runs before the view's ``@blp.auth()``, so the token is read here (verified
    and cached for the request by ``bearer_claims``).
    """
    claims = bearer_claims()
    if claims is not None:
        return f"user:{claims.subject}"
    return client_address_key()


def json_field_key(field: str, normalize: Callable[[str], str]) -> KeyFunction:
    """Key by ``normalize(body[field])`` of a JSON body; the rule is skipped without one.

    The value is stored as a keyed hash: Redis keys do not list the emails people typed.
    """

    def key() -> str | None:
        try:
            # Flask caches the parsed body, so webargs still reads it afterwards.
            body = request.get_json(silent=True)
        except Exception:  # a body over MAX_CONTENT_LENGTH: the view answers 413 itself
            return None
        value = body.get(field) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value.strip():
            return None
        secret = str(current_app.config.get("SECRET_KEY") or "").encode()
        digest = hmac.new(secret, normalize(value).encode(), hashlib.sha256).hexdigest()
        return f"{field}:{digest[:32]}"

    return key


def per_client_address(setting: str) -> Rate:
    """``setting``'s limit per client address."""
    return Rate(setting, client_address_key, "client address")


def per_caller(setting: str, per: str = "user") -> Rate:
    """``setting``'s limit per authenticated user (per client address without a token)."""
    return Rate(setting, caller_key, per)


def describe_limits(settings: Settings, rates: tuple[Rate, ...] | list[Rate]) -> str:
    """The limits of an operation, for its documented 429 response."""
    parts = [
        f"{_spoken(getattr(settings, rate.setting))} per {rate.per} on this operation"
        for rate in rates
        if getattr(settings, rate.setting)
    ]
    if settings.RATELIMIT_DEFAULT:
        parts.append(
            f"{_spoken(settings.RATELIMIT_DEFAULT)} per user (else per client address) "
            "across the API"
        )
    limits = "; ".join(parts) if parts else "none configured"
    return f"Too many requests ({limits}). Retry after `Retry-After` seconds."


def _spoken(limit: str) -> str:
    return limit.replace(";", " and ")


class StorageErrorReporter:
    """Tells the listeners of every storage failure; logs at most one warning per interval."""

    def __init__(self, listeners: list[Callable[[], None]], storage: str) -> None:
        self._listeners = listeners
        self._storage = storage
        self._lock = threading.Lock()
        self._last_warning = float("-inf")
        self._suppressed = 0

    def __call__(self) -> None:
        """Record one failure."""
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a broken metric must not break the request
                logger.exception("rate-limit storage error listener failed")
        now = time.monotonic()
        with self._lock:
            if now - self._last_warning < STORAGE_WARNING_INTERVAL_SECONDS:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last_warning = self._suppressed, 0, now
        logger.warning(
            "rate-limit storage unreachable: limits are counted per process until it answers",
            extra={
                "event": "rate_limit_storage_error",
                "storage": self._storage,
                "suppressed_warnings": suppressed,
            },
        )


class _ProbeReporter:
    """The limiter's storage, reporting each failed health probe (made while it is down)."""

    def __init__(self, storage: Any, report: Callable[[], None]) -> None:
        self._wrapped = storage
        self._report = report

    def check(self) -> bool:
        """Ping the storage; a failure is reported."""
        healthy = bool(self._wrapped.check())
        if not healthy:
            self._report()
        return healthy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


# INCRBY with the expiry set on the first hit of a window (as limits' own script), returning the
# count and the key's TTL together.
_INCR_EXPIRE_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""
_WINDOWS_KEY = "rate_limit_windows"


class RememberingFixedWindow(FixedWindowRateLimiter):
    """The fixed window on Redis, answering the window of a key it hit in this request from that
    hit: the X-RateLimit-* headers then cost no GET and TTL of their own (one Redis round trip
    per limit and request instead of three; profile of GET /api/v1/tasks: 3 Redis calls per
    request, two of them for the headers)."""

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)
        self._redis_storage = storage
        self._incr_expire_ttl = storage.get_connection().register_script(_INCR_EXPIRE_TTL.encode())

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Count ``cost`` against ``item``; remember the window for this request's headers."""
        key = item.key_for(*identifiers)
        count, ttl = self._incr_expire_ttl(
            [self._redis_storage.prefixed_key(key)], [item.get_expiry(), cost]
        )
        if has_request_context():
            windows: dict[str, WindowStats] = g.setdefault(_WINDOWS_KEY, {})
            windows[key] = WindowStats(
                max(int(ttl), 0) + time.time(), max(0, item.amount - int(count))
            )
        return int(count) <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """The window as this request's hit left it, else read from Redis."""
        if has_request_context():
            seen = g.get(_WINDOWS_KEY, {}).get(item.key_for(*identifiers))
            if seen is not None:
                return cast(WindowStats, seen)
        return super().get_window_stats(item, *identifiers)


class ServiceLimiter(Limiter):
    """flask-limiter's Limiter, reporting each time its storage stops answering."""

    def __init__(self, *args: Any, on_storage_error: Callable[[], None], **kwargs: Any) -> None:
        self._report_storage_error = on_storage_error
        self._dead = False
        super().__init__(*args, **kwargs)

    # flask-limiter flips this flag wherever a storage call fails (limit check, headers) and
    # clears it when a probe succeeds; a property sees every flip without copying its logic.
    @property
    def _storage_dead(self) -> bool:
        return self._dead

    @_storage_dead.setter
    def _storage_dead(self, dead: bool) -> None:
        if dead and not self._dead:
            self._report_storage_error()
        self._dead = dead

    def init_app(self, app: Flask) -> None:
        """Bind to ``app``; failed storage probes are reported too."""
        super().init_app(app)
        strategy = self._limiter
        if type(strategy) is FixedWindowRateLimiter and isinstance(strategy.storage, RedisStorage):
            self._limiter = RememberingFixedWindow(strategy.storage)
        if self.enabled:
            # Only check() and reset() are called on this attribute; the strategies keep the
            # real storage.
            self._storage = cast(Storage, _ProbeReporter(self._storage, self._report_storage_error))

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        # Routes outside the rate-limited blueprints (health probes, docs, metrics) skip
        # flask-limiter's whole evaluation rather than being filtered inside it (a request
        # filter still runs its exemption and meta-limit steps: 12% of the liveness probe).
        if _is_limited():
            super()._check_request_limit(callable_name, in_middleware)

    def storage_failed(self) -> None:
        """Switch this process to its in-memory counters (reported once per outage)."""
        self._storage_dead = True


def on_storage_error(app: Flask, listener: Callable[[], None]) -> None:
    """Call ``listener()`` on every rate-limit storage failure of ``app`` (e.g. a metric)."""
    app.extensions.setdefault(LISTENERS_KEY, []).append(listener)


def rate_limiter(app: Flask | None = None) -> ServiceLimiter:
    """The limiter of ``app`` (default: the current app)."""
    limiter: ServiceLimiter = (app or current_app).extensions[EXTENSION_KEY]
    return limiter


def storage_options(settings: Settings) -> dict[str, Any]:
    """Redis client options: short timeouts and no retries, so a dead Redis costs little."""
    if not settings.ratelimit_storage_url.startswith(("redis://", "rediss://")):
        return {}
    timeout = settings.RATELIMIT_STORAGE_TIMEOUT_SECONDS
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        # redis-py retries with backoff by default; the in-memory fallback is the retry here.
        "retry": Retry(NoBackoff(), 0),
        "key_prefix": f"{settings.REDIS_KEY_PREFIX}ratelimit",
    }


def _is_limited() -> bool:
    """True for routes of blueprints that declare themselves rate limited (the API)."""
    blueprint = current_app.blueprints.get(request.blueprint or "")
    return bool(getattr(blueprint, "rate_limited", False))


def init_rate_limits(app: Flask, settings: Settings) -> ServiceLimiter:
    """Create ``app``'s limiter and bind the limits its routes declare (call after blueprints)."""
    listeners: list[Callable[[], None]] = app.extensions.setdefault(LISTENERS_KEY, [])
    storage_url = settings.ratelimit_storage_url
    reporter = StorageErrorReporter(listeners, storage_url.split("://", 1)[0])
    default = (
        [ApplicationLimit(settings.RATELIMIT_DEFAULT, key_function=caller_key, scope=DEFAULT_SCOPE)]
        if settings.RATELIMIT_DEFAULT
        else []
    )
    limiter = ServiceLimiter(
        caller_key,
        application_limits=default,
        strategy=settings.RATELIMIT_STRATEGY,
        storage_uri=storage_url,
        storage_options=storage_options(settings),
        # Fail open: a storage error is logged, never a 500; counting goes on in memory.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        # Written by _add_headers below: flask-limiter's own would put Retry-After on every
        # response and stretch a 503's Retry-After to the end of the rate-limit window.
        headers_enabled=False,
        enabled=settings.RATELIMIT_ENABLED,
        on_storage_error=reporter,
    )
    limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = limiter
    if not settings.RATELIMIT_ENABLED:
        return limiter
    _bind_route_limits(app, limiter, settings)
    if settings.RATELIMIT_HEADERS_ENABLED:
        app.after_request(_add_headers)
    return limiter


def _bind_route_limits(app: Flask, limiter: ServiceLimiter, settings: Settings) -> None:
    """Wrap each view that declares limits; the check then runs before auth and parsing."""
    for endpoint, view in list(app.view_functions.items()):
        view_class = getattr(view, "view_class", None)
        if view_class is not None:  # a MethodView: limits are declared per method
            declared = [
                (method, getattr(getattr(view_class, method.lower(), None), RULES_ATTRIBUTE, ()))
                for method in sorted(view_class.methods or ())
            ]
        else:
            declared = [(None, getattr(view, RULES_ATTRIBUTE, ()))]
        wrapped: Callable[..., Any] = view
        for method, rates in declared:
            for rate in rates:
                value = getattr(settings, rate.setting)
                if not value:
                    continue
                wrapped = limiter.limit(
                    value,
                    key_func=_required_key(rate.key),
                    exempt_when=_skipped(rate.key),
                    methods=[method] if method else None,
                    scope=rate.setting.lower(),
                    override_defaults=False,
                )(wrapped)
        if wrapped is not view:
            app.view_functions[endpoint] = wrapped


def _required_key(key: KeyFunction) -> Callable[[], str]:
    return lambda: key() or ""


def _skipped(key: KeyFunction) -> Callable[[], bool]:
    return lambda: key() is None


def _add_headers(response: Response) -> Response:
    """``X-RateLimit-*`` for the tightest limit of the request; ``Retry-After`` on a 429."""
    limiter = rate_limiter()
    limit = limiter.current_limit
    if limit is None:
        return response
    try:
        remaining, reset_at = limit.remaining, limit.reset_at
    except Exception:
        limiter.storage_failed()
        return response
    response.headers["X-RateLimit-Limit"] = str(limit.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(max(remaining, 0))
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(reset_at - int(time.time()), 1))
    return response
