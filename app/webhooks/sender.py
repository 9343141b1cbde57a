"""One delivery attempt over HTTP, and what its outcome means: success, retry, or give up."""

from __future__ import annotations

import enum
import http.client
import ssl
import time
from dataclasses import dataclass, field

from app.core.retry import parse_retry_after
from app.webhooks.ssrf import UnresolvableHost, UnsafeUrl, UrlPolicy, check_url, open_connection

# Transient by definition (RFC 9110): the same request may succeed later.
RETRYABLE_STATUSES = frozenset({408, 429})
CHUNK_BYTES = 16 * 1024


class OutcomeKind(enum.StrEnum):
    """How an attempt ended."""

    SUCCESS = "success"
    TRANSIENT = "transient"  # retried with backoff
    PERMANENT = "permanent"  # not retried


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt; ``error`` is short and carries no secret."""

    kind: OutcomeKind
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the endpoint asked us to wait (429/503)


@dataclass(frozen=True)
class HttpOptions:
    """Limits of one attempt."""

    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    user_agent: str
    tls_context: ssl.SSLContext | None = field(default=None, compare=False)


def classify(status: int, retry_after_header: str | None) -> Outcome:
    """2xx succeeds; 408, 429 and 5xx are retried; everything else (3xx included) is final."""
    if 200 <= status < 300:
        return Outcome(OutcomeKind.SUCCESS, status)
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(retry_after_header) if status in (429, 503) else None
        return Outcome(OutcomeKind.TRANSIENT, status, f"HTTP {status}", retry_after)
    if 300 <= status < 400:
        return Outcome(OutcomeKind.PERMANENT, status, f"HTTP {status}: redirects are not followed")
    return Outcome(OutcomeKind.PERMANENT, status, f"HTTP {status}")


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    policy: UrlPolicy,
    options: HttpOptions,
) -> Outcome:
    """POST ``body`` to ``url`` after the SSRF check, on a connection pinned to the checked address.

    Never raises for network trouble: every failure becomes an ``Outcome``.
    """
    try:
        target = check_url(url, policy)
    except UnsafeUrl as exc:
        return Outcome(OutcomeKind.PERMANENT, error=f"URL refused: {exc}"[:300])
    except UnresolvableHost as exc:
        return Outcome(OutcomeKind.TRANSIENT, error=str(exc)[:300])
    connection = open_connection(
        target,
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        tls_context=options.tls_context,
    )
    deadline = time.monotonic() + options.connect_timeout + options.read_timeout
    try:
        connection.request(
            "POST",
            target.request_target,
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": options.user_agent,
            },
        )
        response = connection.getresponse()
        _drain(response, limit=options.max_response_bytes, deadline=deadline)
        return classify(response.status, response.getheader("Retry-After"))
    except TimeoutError:
        return Outcome(OutcomeKind.TRANSIENT, error="timed out")
    except ssl.SSLError as exc:
        return Outcome(OutcomeKind.TRANSIENT, error=f"TLS error: {exc.reason or exc}"[:300])
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(OutcomeKind.TRANSIENT, error=_describe(exc))
    finally:
        connection.close()


def _drain(response: http.client.HTTPResponse, *, limit: int, deadline: float) -> None:
    """Read at most ``limit`` bytes of the body (its content does not matter), within the deadline.

    Stopping early is fine: the connection is closed afterwards, never reused. The deadline stops
    an endpoint from holding a worker by trickling bytes just inside the read timeout.
    """
    remaining = limit
    while remaining > 0:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _describe(exc: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused``, at most 300 characters."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
