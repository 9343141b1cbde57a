"""GET /metrics: only for allowed addresses, counts by route template, and database gauges."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.events.models import OutboxEvent
from app.observability.endpoint import address_allowed, parse_networks
from app.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import make_test_app
from tests.factories import auth_headers

TASK_ROUTE = "/api/v1/tasks/<int(max=9223372036854775807):task_id>"


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_not_path(client: FlaskClient, user: Any) -> None:
    before = samples(client)
    for task_id in (1, 2, 3):
        assert client.get(f"/api/v1/tasks/{task_id}", headers=auth_headers(user)).status_code == 404
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    after = samples(client)

    labels = {"method": "GET", "route": TASK_ROUTE, "status": "404"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 3
    )
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert (
        value(after, "http_requests_total", **unmatched)
        - value(before, "http_requests_total", **unmatched)
        == 2
    )
    assert not any("/no/such/path" in str(key) for key in after)
    duration = {"method": "GET", "route": TASK_ROUTE}
    assert (
        value(after, "http_request_duration_seconds_count", **duration)
        - value(before, "http_request_duration_seconds_count", **duration)
        == 3
    )


def test_invented_methods_share_one_label(client: FlaskClient) -> None:
    client.open("/health/live", method="BREW")
    assert any(
        name == "http_requests_total" and ("method", "OTHER") in labels
        for name, labels in samples(client)
    )


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.9", "8.8.8.8", "::2"])
def test_other_addresses_get_the_ordinary_404(client: FlaskClient, address: str) -> None:
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["code"] == "not_found"
    assert b"http_requests_total" not in response.data


def test_allowed_networks_are_configurable(database_url: str, instance_path: Any) -> None:
    app = make_test_app(database_url, instance_path, METRICS_ALLOWED_IPS="10.0.0.0/8, 192.0.2.7")
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404


def test_an_empty_allow_list_serves_nobody(database_url: str, instance_path: Any) -> None:
    app = make_test_app(database_url, instance_path, METRICS_ALLOWED_IPS="")
    assert app.test_client().get("/metrics").status_code == 404


def test_address_matching() -> None:
    loopback = parse_networks("127.0.0.1,::1")
    assert address_allowed("127.0.0.1", loopback)
    assert address_allowed("::ffff:127.0.0.1", loopback)  # IPv4-mapped form
    assert address_allowed("::1", loopback)
    assert not address_allowed("127.0.0.2", loopback)
    assert not address_allowed(None, loopback)
    assert not address_allowed("not-an-address", loopback)


def test_outbox_and_webhook_gauges(client: FlaskClient, db_session: Session, user: Any) -> None:
    old = OutboxEvent(name="task.created", payload={}, created_at=utcnow() - timedelta(minutes=5))
    published = OutboxEvent(name="task.created", payload={}, published_at=utcnow())
    webhook = Webhook(owner_id=user.id, url="https://example.com/hook", event_types=["*"])
    webhook.secret_ciphertext = "x"
    db_session.add_all([old, published, webhook])
    db_session.flush()
    for state in ("pending", "dead", "dead", "succeeded"):
        db_session.add(
            WebhookDelivery(
                webhook_id=webhook.id,
                event_id=uuid.uuid4(),
                event_name="task.created",
                payload={},
                event_created_at=utcnow(),
                state=state,
            )
        )
    db_session.flush()

    found = samples(client)
    assert value(found, "database_gauges_up") == 1
    assert value(found, "outbox_unpublished_events") == 1
    assert 290 < value(found, "outbox_lag_seconds") < 400
    assert value(found, "webhook_deliveries", state="pending") == 1
    assert value(found, "webhook_deliveries", state="dead") == 2
    assert value(found, "webhook_deliveries", state="succeeded") == 1
    assert value(found, "webhook_deliveries", state="failed") == 0


def test_no_backlog_means_no_lag(client: FlaskClient) -> None:
    found = samples(client)
    assert value(found, "outbox_unpublished_events") == 0
    assert value(found, "outbox_lag_seconds") == 0


def test_a_database_outage_leaves_the_http_metrics(tmp_path: Any) -> None:
    app: Flask = make_test_app(
        "postgresql://nobody@127.0.0.1:1/none", tmp_path, DATABASE_CONNECT_TIMEOUT_SECONDS="1"
    )
    found = samples(app.test_client())
    assert value(found, "database_gauges_up") == 0
    assert any(name == "http_requests_total" for name, _ in found)
    assert ("outbox_lag_seconds", ()) not in found
