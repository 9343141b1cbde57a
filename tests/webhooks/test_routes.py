"""The webhooks API: CRUD, owner scoping, the secret shown once and encrypted at rest, validation,
deliveries and replay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.events import service as events
from app.events.models import OutboxEvent
from app.users.models import User
from app.webhooks import deliveries
from app.webhooks.models import Webhook, WebhookDelivery
from tests.factories import auth_headers
from tests.webhooks.conftest import PUBLIC_HOST, Override

URL = f"https://{PUBLIC_HOST}/tasks"
BASE = "/api/v1/webhooks"


@pytest.fixture(autouse=True)
def _public_dns(fake_dns: dict[str, list[str]]) -> dict[str, list[str]]:
    return fake_dns


def create(client: FlaskClient, owner: User, **body: Any) -> dict[str, Any]:
    """Create a webhook through the API; the 201 body."""
    response = client.post(
        BASE,
        json={"url": URL, "event_types": ["task.created"], **body},
        headers=auth_headers(owner),
    )
    assert response.status_code == 201, response.json
    created: dict[str, Any] = response.json
    return created


def add_delivery(session: Session, owner: User, name: str = events.TASK_CREATED) -> uuid.UUID:
    """Record an event of ``owner`` and fan it out; the first delivery id."""
    event = events.record(session, name, {"task_id": 1, "owner_id": owner.id})
    session.flush()
    [delivery_id] = deliveries.create_deliveries(session, event=event)
    session.flush()
    return delivery_id


def test_create_returns_the_secret_once(client: FlaskClient, user: User) -> None:
    created = create(client, user, description="CRM sync", event_types=["*"])
    assert created["secret"].startswith("whsec_")
    assert created["url"] == URL
    assert created["event_types"] == ["*"]
    assert created["description"] == "CRM sync"
    assert created["is_active"] is True
    assert created["disabled_reason"] is None
    assert created["failing_since"] is None

    shown = client.get(f"{BASE}/{created['id']}", headers=auth_headers(user))
    assert shown.status_code == 200
    assert "secret" not in shown.json
    assert shown.json == {key: value for key, value in created.items() if key != "secret"}
    listed = client.get(BASE, headers=auth_headers(user)).json
    assert listed["meta"]["total"] == 1
    assert "secret" not in listed["items"][0]


def test_create_answers_the_location_of_the_new_webhook(client: FlaskClient, user: User) -> None:
    response = client.post(
        BASE, json={"url": URL, "event_types": ["*"]}, headers=auth_headers(user)
    )
    assert response.headers["Location"].endswith(f"{BASE}/{response.json['id']}")


def test_the_secret_is_encrypted_at_rest(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    created = create(client, user)
    secret = created["secret"]
    row = db_session.execute(
        text("SELECT * FROM webhooks WHERE id = :id"), {"id": uuid.UUID(created["id"])}
    ).one()
    stored = " ".join(str(value) for value in row)
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored
    assert row.secret_ciphertext.startswith("gAAAA")  # a Fernet token


def test_event_types_are_validated_and_deduplicated(client: FlaskClient, user: User) -> None:
    created = create(client, user, event_types=["task.created", "task.deleted", "task.created"])
    assert created["event_types"] == ["task.created", "task.deleted"]
    for bad in ([], ["task.exploded"], "task.created", [""], None):
        response = client.post(
            BASE, json={"url": URL, "event_types": bad}, headers=auth_headers(user)
        )
        assert response.status_code == 422, bad
        assert "event_types" in response.json["errors"]["json"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["*"]}, "url"),
        ({"url": URL}, "event_types"),
        ({"url": "", "event_types": ["*"]}, "url"),
        ({"url": URL, "event_types": ["*"], "secret": "whsec_mine"}, "secret"),
        ({"url": URL, "event_types": ["*"], "id": str(uuid.uuid4())}, "id"),
        ({"url": URL, "event_types": ["*"], "owner_id": 1}, "owner_id"),
        ({"url": URL, "event_types": ["*"], "is_active": False}, "is_active"),
        ({"url": URL, "event_types": ["*"], "description": "a\x00b"}, "description"),
        ({"url": URL, "event_types": ["*"], "description": "x" * 501}, "description"),
    ],
)
def test_invalid_bodies_are_422_on_the_field(
    client: FlaskClient, user: User, body: dict[str, Any], field: str
) -> None:
    response = client.post(BASE, json=body, headers=auth_headers(user))
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::ffff:10.0.0.1]/", "IPv4-mapped"),
        ("http://2130706433/", "loopback"),
        ("http://internal.example.com/", "private"),
        ("ftp://hooks.example.com/", "must start with"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com:6379/", "Port 6379"),
        ("https://nowhere.invalid/", "does not resolve"),
    ],
)
def test_unsafe_urls_are_refused_with_a_clear_message(
    client: FlaskClient, user: User, fake_dns: dict[str, list[str]], url: str, message: str
) -> None:
    fake_dns["internal.example.com"] = ["10.20.30.40"]
    response = client.post(
        BASE, json={"url": url, "event_types": ["*"]}, headers=auth_headers(user)
    )
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert message in response.json["message"]
    assert message in response.json["errors"]["json"]["url"][0]


def test_https_is_required_when_configured(
    client: FlaskClient, user: User, override_settings: Override
) -> None:
    override_settings(WEBHOOK_REQUIRE_HTTPS=True)
    response = client.post(
        BASE,
        json={"url": f"http://{PUBLIC_HOST}/", "event_types": ["*"]},
        headers=auth_headers(user),
    )
    assert response.status_code == 422
    assert "https://" in response.json["message"]


def test_webhooks_per_user_are_limited(
    client: FlaskClient, user: User, other_user: User, override_settings: Override
) -> None:
    override_settings(WEBHOOK_MAX_PER_USER=2)
    create(client, user)
    create(client, user)
    response = client.post(
        BASE, json={"url": URL, "event_types": ["*"]}, headers=auth_headers(user)
    )
    assert response.status_code == 409
    assert "maximum of 2" in response.json["message"]
    create(client, other_user)  # the limit is per user


def test_someone_elses_webhook_is_404_everywhere(
    client: FlaskClient, user: User, other_user: User, db_session: Session
) -> None:
    created = create(client, user)
    delivery_id = add_delivery(db_session, user)
    item = f"{BASE}/{created['id']}"
    stranger = auth_headers(other_user)
    assert client.get(item, headers=stranger).status_code == 404
    assert client.patch(item, json={"description": "x"}, headers=stranger).status_code == 404
    assert client.delete(item, headers=stranger).status_code == 404
    assert client.get(f"{item}/deliveries", headers=stranger).status_code == 404
    redeliver = f"{item}/deliveries/{delivery_id}/redeliver"
    assert client.post(redeliver, headers=stranger).status_code == 404
    assert client.get(BASE, headers=stranger).json["meta"]["total"] == 0
    assert client.get(item, headers=auth_headers(user)).status_code == 200


def test_webhooks_require_a_token(client: FlaskClient) -> None:
    assert client.get(BASE).status_code == 401
    assert client.post(BASE, json={"url": URL, "event_types": ["*"]}).status_code == 401


def test_unknown_ids_are_404(client: FlaskClient, user: User) -> None:
    created = create(client, user)
    headers = auth_headers(user)
    assert client.get(f"{BASE}/{uuid.uuid4()}", headers=headers).status_code == 404
    assert client.get(f"{BASE}/not-a-uuid", headers=headers).status_code == 404
    missing = f"{BASE}/{created['id']}/deliveries/{uuid.uuid4()}/redeliver"
    assert client.post(missing, headers=headers).status_code == 404


def test_patch_changes_only_the_fields_given(
    client: FlaskClient, user: User, fake_dns: dict[str, list[str]]
) -> None:
    created = create(client, user, description="before")
    fake_dns["new.example.com"] = ["8.8.4.4"]
    response = client.patch(
        f"{BASE}/{created['id']}",
        json={"url": "https://new.example.com/hook", "event_types": ["task.deleted"]},
        headers=auth_headers(user),
    )
    assert response.status_code == 200
    assert response.json["url"] == "https://new.example.com/hook"
    assert response.json["event_types"] == ["task.deleted"]
    assert response.json["description"] == "before"


def test_patch_checks_the_new_url(
    client: FlaskClient, user: User, fake_dns: dict[str, list[str]]
) -> None:
    created = create(client, user)
    fake_dns["rebound.example.com"] = ["127.0.0.1"]
    response = client.patch(
        f"{BASE}/{created['id']}",
        json={"url": "https://rebound.example.com/"},
        headers=auth_headers(user),
    )
    assert response.status_code == 422
    assert "loopback" in response.json["errors"]["json"]["url"][0]
    assert client.get(f"{BASE}/{created['id']}", headers=auth_headers(user)).json["url"] == URL


def test_patch_refuses_read_only_fields(client: FlaskClient, user: User) -> None:
    created = create(client, user)
    for body in ({"secret": "whsec_x"}, {"disabled_reason": None}, {"failing_since": None}):
        response = client.patch(f"{BASE}/{created['id']}", json=body, headers=auth_headers(user))
        assert response.status_code == 422, body


def test_disabling_stops_pending_deliveries_and_enabling_resets_the_breaker(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    created = create(client, user)
    delivery_id = add_delivery(db_session, user)
    item = f"{BASE}/{created['id']}"
    paused = client.patch(item, json={"is_active": False}, headers=auth_headers(user))
    assert paused.json["is_active"] is False
    assert paused.json["disabled_reason"] == "Disabled by its owner."
    delivery = db_session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert delivery is not None
    assert (delivery.state, delivery.last_error) == ("failed", "endpoint disabled")

    webhook = db_session.get(Webhook, uuid.UUID(created["id"]))
    assert webhook is not None
    webhook.failing_since = utcnow() - timedelta(days=2)
    db_session.flush()
    resumed = client.patch(item, json={"is_active": True}, headers=auth_headers(user))
    assert resumed.json["is_active"] is True
    assert resumed.json["disabled_reason"] is None
    assert resumed.json["failing_since"] is None


def test_delete_removes_the_webhook_and_its_deliveries(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    created = create(client, user)
    delivery_id = add_delivery(db_session, user)
    item = f"{BASE}/{created['id']}"
    assert client.delete(item, headers=auth_headers(user)).status_code == 204
    assert client.get(item, headers=auth_headers(user)).status_code == 404
    db_session.expire_all()
    assert db_session.get(WebhookDelivery, delivery_id) is None


def test_deliveries_are_listed_newest_first_and_filtered_by_state(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    created = create(client, user, event_types=["*"])
    first = add_delivery(db_session, user)
    second = add_delivery(db_session, user, events.TASK_DELETED)
    older = db_session.get(WebhookDelivery, first)
    assert older is not None
    older.created_at = utcnow() - timedelta(minutes=1)
    older.state = "dead"
    older.attempts = 8
    older.last_status_code = 503
    older.last_error = "HTTP 503"
    older.delays = [0.5, 1.2]
    older.next_attempt_at = None
    db_session.flush()

    listed = client.get(f"{BASE}/{created['id']}/deliveries", headers=auth_headers(user)).json
    assert [item["id"] for item in listed["items"]] == [str(second), str(first)]
    assert listed["meta"] == {"page": 1, "page_size": 20, "total": 2, "pages": 1}
    dead = client.get(
        f"{BASE}/{created['id']}/deliveries?state=dead", headers=auth_headers(user)
    ).json
    [item] = dead["items"]
    event = db_session.scalars(select(OutboxEvent).where(OutboxEvent.name == "task.created")).one()
    assert item == {
        "id": str(first),
        "event_id": str(event.id),
        "event_name": "task.created",
        "state": "dead",
        "attempts": 8,
        "last_status_code": 503,
        "last_error": "HTTP 503",
        "last_attempt_at": None,
        "next_attempt_at": None,
        "delays": [0.5, 1.2],
        "created_at": item["created_at"],
        "delivered_at": None,
    }
    bad = client.get(f"{BASE}/{created['id']}/deliveries?state=lost", headers=auth_headers(user))
    assert bad.status_code == 422


def test_redeliver_resets_the_attempt_budget_and_enqueues(
    client: FlaskClient, user: User, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        deliveries, "send_task", lambda name, args, **_kw: sent.append((name, tuple(args)))
    )
    created = create(client, user)
    delivery_id = add_delivery(db_session, user)
    delivery = db_session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    delivery.state, delivery.attempts, delivery.delays = "dead", 8, [1.0, 2.0]
    delivery.next_attempt_at = None
    db_session.flush()

    response = client.post(
        f"{BASE}/{created['id']}/deliveries/{delivery_id}/redeliver", headers=auth_headers(user)
    )
    assert response.status_code == 202
    assert response.json["state"] == "pending"
    assert response.json["attempts"] == 0
    assert response.json["delays"] == []
    assert response.json["next_attempt_at"] is not None
    assert sent == [("webhooks.deliver", (str(delivery_id),))]


def test_redeliver_on_a_disabled_webhook_is_409(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    created = create(client, user)
    delivery_id = add_delivery(db_session, user)
    client.patch(f"{BASE}/{created['id']}", json={"is_active": False}, headers=auth_headers(user))
    response = client.post(
        f"{BASE}/{created['id']}/deliveries/{delivery_id}/redeliver", headers=auth_headers(user)
    )
    assert response.status_code == 409
    assert "enable it first" in response.json["message"]


def test_a_delivery_is_reached_only_through_its_own_webhook(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    mine = create(client, user)
    also_mine = create(client, user, event_types=["task.deleted"])
    delivery_id = add_delivery(db_session, user)
    wrong = f"{BASE}/{also_mine['id']}/deliveries/{delivery_id}/redeliver"
    assert client.post(wrong, headers=auth_headers(user)).status_code == 404
    right = f"{BASE}/{mine['id']}/deliveries/{delivery_id}/redeliver"
    assert client.post(right, headers=auth_headers(user)).status_code == 202
