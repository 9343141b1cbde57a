"""User management: reading, listing, updating and deleting accounts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.auth import ADMIN_ROLE
from app.core.errors import Conflict, NotFound
from app.events.service import USER_DELETED, record
from app.users.auth_service import (
    EMAIL_TAKEN,
    change_password,
    check_current_password,
    email_taken,
    new_user,
    normalize_email,
    revoke_user_sessions,
    unique_email,
)
from app.users.models import User

# Ids are BIGINT; a larger number in a URL is simply not found (not a database error).
MAX_ID = 2**63 - 1


def get_user(*, session: Session, user_id: int) -> User:
    """The user ``user_id``; 404 when there is none."""
    user = session.get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        raise NotFound("User not found.")
    return user


def list_users(
    *,
    session: Session,
    page: int,
    page_size: int,
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[User], int]:
    """One page of users ordered by id, and the total matching the filters."""
    query = select(User)
    if email:
        # Stored emails are lower-case; autoescape makes % and _ match literally.
        query = query.where(User.email.contains(email.strip().lower(), autoescape=True))
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(User.id).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return list(items), total


def create_user(
    *,
    session: Session,
    email: str,
    password: str,
    full_name: str | None = None,
    role: str = "user",
) -> User:
    """Create a user of ``role`` (the CLI's way to make administrators); 409 on a taken email."""
    user = new_user(session, email=email, password=password, full_name=full_name, role=role)
    session.commit()
    return user


def any_admin(*, session: Session) -> User | None:
    """The first administrator, or None when there is none."""
    return session.scalar(select(User).where(User.role == ADMIN_ROLE).order_by(User.id).limit(1))


def update_me(
    *,
    session: Session,
    user_id: int,
    session_id: uuid.UUID,
    changes: dict[str, Any],
) -> User:
    """Apply the caller's own changes (email, full_name, password).

    ``current_password``, when present, must be right; a new password revokes every other login
    session of the user while ``session_id`` (the caller's) keeps working.
    """
    user = get_user(session=session, user_id=user_id)
    if "current_password" in changes:
        check_current_password(user, changes["current_password"])
    if "email" in changes:
        _set_email(session, user, changes["email"])
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    if "password" in changes:
        change_password(
            session, user=user, new_password=changes["password"], keep_session_id=session_id
        )
    session.commit()
    return user


def update_user(*, session: Session, actor_id: int, user_id: int, changes: dict[str, Any]) -> User:
    """An administrator's changes (email, full_name, role, is_active) to user ``user_id``.

    Administrators cannot demote or deactivate themselves, so at least one always remains;
    deactivating a user revokes their sessions at once.
    """
    user = get_user(session=session, user_id=user_id)
    if user.id == actor_id:
        if changes.get("role", user.role) != user.role:
            raise Conflict("You cannot change your own role.")
        if changes.get("is_active", True) is False:
            raise Conflict("You cannot deactivate yourself.")
    if "email" in changes:
        _set_email(session, user, changes["email"])
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    if "role" in changes:
        user.role = changes["role"]
    if "is_active" in changes:
        if user.is_active and not changes["is_active"]:
            revoke_user_sessions(session, user_id=user.id, reason="deactivated")
        user.is_active = changes["is_active"]
    session.commit()
    return user


def delete_user(*, session: Session, actor_id: int, user_id: int) -> None:
    """Delete user ``user_id``; the database cascades their tasks and sessions."""
    user = get_user(session=session, user_id=user_id)
    if user.id == actor_id:
        raise Conflict("You cannot delete yourself.")
    record(session, USER_DELETED, {"user_id": user.id})
    session.delete(user)
    session.commit()


def _set_email(session: Session, user: User, email: str) -> None:
    email = normalize_email(email)
    if email == user.email:
        return
    if email_taken(session, email, except_user_id=user.id):
        raise Conflict(EMAIL_TAKEN)
    with unique_email(session):
        user.email = email
