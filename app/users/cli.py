"""``flask users ...``: create administrators, and the demo admin ``make run`` prints once."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError, validate

from app.core.errors import Conflict
from app.extensions import db
from app.users import service
from app.users.auth_service import normalize_email
from app.users.schemas import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

DEMO_ADMIN_EMAIL = "admin@example.com"
# The passwords every guessing attack tries first; an administrator must not use one.
COMMON_PASSWORDS = frozenset(
    {
        "12345678",
        "123456789",
        "1234567890",
        "password",
        "password1",
        "password123",
        "passw0rd",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "admin123",
        "administrator",
        "changeme",
        "letmein1",
        "welcome1",
        "abcdefgh",
    }
)

users_cli = click.Group("users", help="Manage users.")


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is too weak for an administrator of ``email``, or None."""
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        return f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        return "is too easy to guess"
    if lowered == email or lowered == email.partition("@")[0]:
        return "must not be the email address"
    return None


def _valid_email(value: str) -> str:
    email = normalize_email(value)
    try:
        validate.Email()(email)
        validate.Length(max=254)(email)
    except ValidationError:
        raise click.BadParameter(f"{value!r} is not a valid email address") from None
    return email


@users_cli.command("create-admin")
@click.option("--email", required=True, help="Email of the new administrator.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Password (prompted, hidden, when omitted; avoid passing it on a shared machine).",
)
@click.option("--full-name", default=None, help="Display name.")
@with_appcontext
def create_admin(email: str, password: str, full_name: str | None) -> None:
    """Create an administrator account (never changes an existing account)."""
    email = _valid_email(email)
    problem = password_problem(password, email)
    if problem:
        raise click.ClickException(f"the password {problem}; nothing was created")
    try:
        user = service.create_user(
            session=db.session(), email=email, password=password, full_name=full_name, role="admin"
        )
    except Conflict:
        raise click.ClickException(
            f"a user with the email {email} already exists; this command never changes existing "
            "accounts. Choose another email, or promote the user with PATCH /api/v1/users/{id}."
        ) from None
    click.echo(f"administrator {user.email} created (id {user.id})")


@users_cli.command("ensure-demo-admin")
@with_appcontext
def ensure_demo_admin() -> None:
    """Create admin@example.com with a random password when no administrator exists."""
    session = db.session()
    existing = service.any_admin(session=session)
    if existing is not None:
        click.echo(
            f"An administrator exists ({existing.email}); its password is stored only as a hash. "
            "Lost it? Create another: flask users create-admin --email you@example.com"
        )
        return
    password = secrets.token_urlsafe(18)
    try:
        service.create_user(
            session=session,
            email=DEMO_ADMIN_EMAIL,
            password=password,
            full_name="Demo Admin",
            role="admin",
        )
    except Conflict:
        raise click.ClickException(
            f"{DEMO_ADMIN_EMAIL} exists but is not an administrator; create one with: "
            "flask users create-admin --email you@example.com"
        ) from None
    lines = [
        "Demo administrator created. The password is shown only this once:",
        "",
        f"  email:    {DEMO_ADMIN_EMAIL}",
        f"  password: {password}",
        "",
        "Log in with POST /api/v1/auth/login, then click Authorize in /docs.",
    ]
    click.echo(_box(lines))


def _box(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    border = "+" + "-" * (width + 2) + "+"
    return "\n".join([border, *(f"| {line.ljust(width)} |" for line in lines), border])
