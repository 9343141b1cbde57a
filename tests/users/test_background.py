"""Consumers of the users feature: the welcome email and the webhook-disabled email, each queued
once however often its event is delivered."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.events import service as events
from app.events.background import run_consumer
from app.events.models import OutboxEvent
from app.events.registry import FollowUp, consumers_for
from app.notifications.models import EmailMessage, EmailState
from app.users import background
from app.users.models import User
from tests.factories import UserFactory


def test_registering_queues_one_welcome_email(client: FlaskClient, db_session: Session) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "ada@example.com", "password": "a" * 8, "full_name": "Ada"},
    )
    assert response.status_code == 201
    event = db_session.scalars(select(OutboxEvent)).one()
    welcome = next(item for item in consumers_for(event.name) if item.name == "users.welcome_email")

    follow_ups = run_consumer(db_session, welcome, event)

    email = db_session.scalars(select(EmailMessage)).one()
    assert follow_ups == [FollowUp("notifications.send_email", (str(email.id),))]
    assert email.to_address == "ada@example.com"
    assert email.template == "welcome"
    assert email.context == {"full_name": "Ada", "email": "ada@example.com"}
    assert email.dedupe_key == f"welcome:{event.id}"
    assert email.state == EmailState.PENDING.value

    # A redelivered event: the consumed marker stops it; even without it, the dedupe key does.
    assert run_consumer(db_session, welcome, event) == []
    assert background.welcome_email(db_session, event) == []
    db_session.commit()
    assert len(db_session.scalars(select(EmailMessage)).all()) == 1


def test_no_welcome_email_for_a_user_gone_or_deactivated(db_session: Session) -> None:
    inactive = UserFactory(is_active=False)
    for user_id in (inactive.id, 2**40, "1", None):
        event = events.record(db_session, events.USER_REGISTERED, {"user_id": user_id})
        db_session.flush()
        assert background.welcome_email(db_session, event) == []
    assert db_session.scalars(select(EmailMessage)).all() == []


def test_a_disabled_webhook_emails_its_owner(db_session: Session, user: User) -> None:
    webhook_id = str(uuid.uuid4())
    event = events.record(
        db_session, events.WEBHOOK_DISABLED, {"webhook_id": webhook_id, "owner_id": user.id}
    )
    db_session.flush()

    follow_ups = background.webhook_disabled_email(db_session, event)

    email = db_session.scalars(select(EmailMessage)).one()
    assert follow_ups == [FollowUp("notifications.send_email", (str(email.id),))]
    assert email.to_address == user.email
    assert email.template == "webhook_disabled"
    assert email.context["webhook_id"] == webhook_id
    assert email.dedupe_key == f"webhook-disabled:{event.id}"
    assert background.webhook_disabled_email(db_session, event) == []


def test_the_consumers_are_registered_for_their_events() -> None:
    names = {
        events.USER_REGISTERED: "users.welcome_email",
        events.USER_PASSWORD_RESET_REQUESTED: "users.password_reset_email",
        events.WEBHOOK_DISABLED: "users.webhook_disabled_email",
    }
    for event_name, consumer_name in names.items():
        assert consumer_name in {item.name for item in consumers_for(event_name)}
