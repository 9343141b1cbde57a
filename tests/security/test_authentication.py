"""API2 Broken Authentication, the part not already proven next to the code (see
docs/security.md): a password reset request tells nothing about whether the account exists, in
its status, body, headers or the rows it writes."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.events.models import OutboxEvent
from app.users.models import PasswordResetToken, User

RESET = "/api/v1/auth/password-reset"
UNKNOWN = "nobody-at-all@example.com"
# What differs from one request to the next whoever asks (the budget left is per address).
VARYING_HEADERS = {"X-Request-ID", "Date", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def _shape(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {
        name: value for name, value in response.headers.items() if name not in VARYING_HEADERS
    }
    return response.status_code, response.get_data(), headers


def test_a_reset_request_looks_and_acts_the_same_for_unknown_accounts(
    client: FlaskClient, db_session: Session, user: User
) -> None:
    known = client.post(RESET, json={"email": user.email})
    unknown = client.post(RESET, json={"email": UNKNOWN})

    assert _shape(known) == _shape(unknown)
    rows = db_session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.name == "user.password_reset_requested")
        .order_by(OutboxEvent.created_at)
    ).all()
    mine = [row.payload for row in rows if row.payload.get("email") in (user.email, UNKNOWN)]
    assert mine == [{"email": user.email}, {"email": UNKNOWN}]
    # No token yet for either: the worker issues it, out of the request's timing.
    assert (
        db_session.scalars(
            select(PasswordResetToken).where(PasswordResetToken.user_id == user.id)
        ).all()
        == []
    )
