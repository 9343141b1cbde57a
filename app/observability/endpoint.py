"""``GET /metrics``: the Prometheus text format, for allowed client addresses only.

Served by the API itself rather than on a second port: gunicorn has one listener per app, and
the address check below (after ProxyFix, so it is the real client) keeps it private. Everyone
outside ``METRICS_ALLOWED_IPS`` gets the same 404 as for an unknown path. The compose load
balancer refuses ``/metrics`` as well; Prometheus scrapes each replica directly.

With several processes (``PROMETHEUS_MULTIPROC_DIR``), each answer adds up the files of every
gunicorn worker, so whichever worker serves the scrape reports the whole replica.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from werkzeug.exceptions import NotFound

from app.config import split_list
from app.core.database import utcnow
from app.events.models import OutboxEvent
from app.extensions import db
from app.webhooks.models import DeliveryState, WebhookDelivery

logger = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# A scrape must never hang on a slow database: these counts give up after this long.
DATABASE_GAUGES_TIMEOUT_MS = 1000
ALLOWED_NETWORKS_KEY = "metrics_allowed_networks"


def multiprocess_enabled() -> bool:
    """True when prometheus_client keeps values in per-process files (PROMETHEUS_MULTIPROC_DIR)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def parse_networks(value: str) -> tuple[IpNetwork, ...]:
    """``"127.0.0.1,10.0.0.0/8"`` as networks; a bare address is a /32 (or /128)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in split_list(value))


def address_allowed(address: str | None, networks: Sequence[IpNetwork]) -> bool:
    """True when ``address`` lies in one of ``networks`` (IPv4-mapped IPv6 counts as IPv4)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class _ThisProcess(Collector):
    """The default registry (this process only), when there is a single process."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class DatabaseGauges(Collector):
    """Outbox backlog and webhook deliveries, counted when scraped (no process keeps them).

    Both counts read small partial indexes (unpublished events, pending deliveries) or a table
    bounded by its retention; a statement timeout caps the cost of a scrape. They describe the
    whole deployment, so every replica reports the same value: aggregate with ``max``, not
    ``sum``.
    """

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "database_gauges_up", "1 when the database gauges below could be read at this scrape."
        )
        try:
            families = list(self._read())
        except Exception as exc:  # a database outage must not take the HTTP metrics down too
            logger.warning(
                "metrics: database gauges unavailable: %s", type(exc).__name__, exc_info=True
            )
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        session = db.session()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL statement_timeout = {DATABASE_GAUGES_TIMEOUT_MS}"))
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.published_at.is_(None)
            )
        ).one()
        by_state: dict[str, int] = dict(
            session.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ).all()
        )

        unpublished = GaugeMetricFamily(
            "outbox_unpublished_events", "Outbox events not yet published to the broker."
        )
        unpublished.add_metric([], count)
        yield unpublished
        lag = GaugeMetricFamily(
            "outbox_lag_seconds",
            "Age of the oldest unpublished outbox event (0 when none waits).",
        )
        lag.add_metric([], _age_seconds(oldest))
        yield lag
        deliveries = GaugeMetricFamily(
            "webhook_deliveries", "Webhook deliveries kept, by state.", labels=["state"]
        )
        for state in DeliveryState:
            deliveries.add_metric([state.value], by_state.get(state.value, 0))
        yield deliveries


def _age_seconds(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite returns aggregates without the column's type
        oldest = oldest.replace(tzinfo=UTC)
    return max((utcnow() - oldest).total_seconds(), 0.0)


def scrape_registry(*, database: bool = True) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics, plus the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_enabled():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    if database:
        registry.register(DatabaseGauges())
    return registry


def metrics() -> Response:
    """Prometheus metrics, for allowed addresses only (404 for everyone else)."""
    networks: tuple[IpNetwork, ...] = current_app.extensions[ALLOWED_NETWORKS_KEY]
    if not address_allowed(request.remote_addr, networks):
        raise NotFound()
    return Response(generate_latest(scrape_registry()), mimetype=CONTENT_TYPE_LATEST)


def init_metrics_endpoint(app: Flask, allowed: str) -> None:
    """Serve ``/metrics`` on ``app`` to the ``allowed`` networks."""
    app.extensions[ALLOWED_NETWORKS_KEY] = parse_networks(allowed)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
