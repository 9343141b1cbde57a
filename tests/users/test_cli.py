"""``flask users create-admin`` and ``flask users ensure-demo-admin``."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.users.models import User
from tests.factories import AdminFactory, UserFactory

STRONG = "a long admin passphrase"


def _user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def _can_log_in(client: FlaskClient, email: str, password: str) -> bool:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status_code == 200


def test_create_admin_with_password_option(
    runner: FlaskCliRunner, client: FlaskClient, db_session: Session
) -> None:
    result = runner.invoke(
        args=["users", "create-admin", "--email", " Boss@Example.com ", "--password", STRONG]
    )

    assert result.exit_code == 0, result.output
    assert "administrator boss@example.com created" in result.output
    admin = _user(db_session, "boss@example.com")
    assert admin is not None
    assert admin.role == "admin"
    assert STRONG not in admin.password_hash
    assert _can_log_in(client, "boss@example.com", STRONG)


def test_create_admin_prompts_for_a_hidden_confirmed_password(
    runner: FlaskCliRunner, client: FlaskClient, db_session: Session
) -> None:
    result = runner.invoke(
        args=["users", "create-admin", "--email", "prompted@example.com"],
        input=f"{STRONG}\n{STRONG}\n",
    )

    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert STRONG not in result.output  # hidden input is not echoed
    assert _can_log_in(client, "prompted@example.com", STRONG)


def test_create_admin_refuses_mismatched_confirmation(
    runner: FlaskCliRunner, db_session: Session
) -> None:
    result = runner.invoke(
        args=["users", "create-admin", "--email", "typo@example.com"],
        input=f"{STRONG}\n{STRONG}x\n",
    )

    assert result.exit_code != 0
    assert "do not match" in result.output
    assert _user(db_session, "typo@example.com") is None


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "must be 8 to 128 characters"),
        ("x" * 129, "must be 8 to 128 characters"),
        ("Password1", "too easy to guess"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("weakling@example.com", "must not be the email"),
    ],
)
def test_create_admin_refuses_weak_passwords(
    runner: FlaskCliRunner, db_session: Session, password: str, reason: str
) -> None:
    result = runner.invoke(
        args=["users", "create-admin", "--email", "weakling@example.com", "--password", password]
    )

    assert result.exit_code == 1
    assert reason in result.output
    assert _user(db_session, "weakling@example.com") is None


def test_create_admin_never_changes_an_existing_account(
    runner: FlaskCliRunner, db_session: Session
) -> None:
    existing = UserFactory(email="taken@example.com")
    old_hash = existing.password_hash

    result = runner.invoke(
        args=["users", "create-admin", "--email", "TAKEN@example.com", "--password", STRONG]
    )

    assert result.exit_code == 1
    assert "already exists" in result.output
    db_session.refresh(existing)
    assert (existing.role, existing.password_hash) == ("user", old_hash)


def test_create_admin_refuses_an_invalid_email(runner: FlaskCliRunner, db_session: Session) -> None:
    result = runner.invoke(
        args=["users", "create-admin", "--email", "not-an-email", "--password", STRONG]
    )

    assert result.exit_code == 2
    assert "not a valid email" in result.output


def test_ensure_demo_admin_creates_one_and_prints_it_once(
    runner: FlaskCliRunner, client: FlaskClient, db_session: Session
) -> None:
    first = runner.invoke(args=["users", "ensure-demo-admin"])

    assert first.exit_code == 0, first.output
    match = re.search(r"password: (\S+)", first.output)
    assert match is not None
    password = match.group(1)
    assert len(password) >= 20
    assert "admin@example.com" in first.output
    assert first.output.lstrip().startswith("+---")
    admin = _user(db_session, "admin@example.com")
    assert admin is not None
    assert admin.role == "admin"
    assert password not in admin.password_hash
    assert _can_log_in(client, "admin@example.com", password)

    second = runner.invoke(args=["users", "ensure-demo-admin"])

    assert second.exit_code == 0
    assert "exists" in second.output
    assert "password:" not in second.output
    assert password not in second.output
    assert "create-admin" in second.output
    assert len(db_session.scalars(select(User).where(User.role == "admin")).all()) == 1


def test_ensure_demo_admin_leaves_an_existing_admin_alone(
    runner: FlaskCliRunner, db_session: Session
) -> None:
    admin = AdminFactory(email="ops@example.com")

    result = runner.invoke(args=["users", "ensure-demo-admin"])

    assert result.exit_code == 0
    assert admin.email in result.output
    assert _user(db_session, "admin@example.com") is None


def test_ensure_demo_admin_refuses_to_promote_a_regular_user(
    runner: FlaskCliRunner, db_session: Session
) -> None:
    squatter = UserFactory(email="admin@example.com")

    result = runner.invoke(args=["users", "ensure-demo-admin"])

    assert result.exit_code == 1
    assert "not an administrator" in result.output
    db_session.refresh(squatter)
    assert squatter.role == "user"
