"""Exponential backoff with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry ``attempt`` (1-based): uniform in [0, min(cap, base * 2^(attempt-1))].

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads retries of many
    failing deliveries instead of having them hammer a recovering endpoint in lockstep. A floor
    of ``base / 2`` keeps a retry from firing immediately.
    """
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    draw: float = (rng or random).uniform(0, ceiling)  # jitter, not cryptography
    return max(draw, min(base / 2, ceiling))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
