"""Request and response schemas of the identity feature, named by direction."""

from __future__ import annotations

from typing import Any, ClassVar

import marshmallow as ma
from marshmallow import validate

from app.core.schemas import PageArgs, PatchSchema, StrictSchema, Text, page_schema
from app.users.models import ROLES

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
EMAIL_MAX_LENGTH = 254
FULL_NAME_MAX_LENGTH = 100
# Long enough for any token the service issues; bounds the work spent on garbage.
TOKEN_MAX_LENGTH = 4096
# A reset token is 43 characters; anything much longer is not one.
RESET_TOKEN_MAX_LENGTH = 256


class Email(Text):
    """An email address, normalised (trimmed, lower-case) before it is validated."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", [validate.Length(max=EMAIL_MAX_LENGTH), validate.Email()])
        kwargs.setdefault("metadata", {"format": "email", "example": "ada@example.com"})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip().lower()


def new_password(**kwargs: Any) -> Text:
    """A password field carrying the length policy (8-128 characters)."""
    return Text(
        load_only=True,
        validate=validate.Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH),
        metadata={
            "description": f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters",
            "example": "correct horse battery staple",
        },
        **kwargs,
    )


def full_name_field() -> Text:
    """The optional display name (null clears it)."""
    return Text(
        allow_none=True,
        validate=validate.Length(max=FULL_NAME_MAX_LENGTH),
        metadata={"example": "Ada Lovelace"},
    )


class UserRegister(StrictSchema):
    """Body of ``POST /auth/register``."""

    email = Email(required=True)
    password = new_password(required=True)
    full_name = full_name_field()


class LoginCredentials(StrictSchema):
    """Body of ``POST /auth/login``."""

    email = Email(required=True)
    # No policy here: an old account may predate it, and a wrong password is a 401, not a 422.
    password = Text(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"example": "correct horse battery staple"},
    )


class RefreshRequest(StrictSchema):
    """Body of ``POST /auth/refresh``."""

    refresh_token = Text(
        required=True,
        validate=validate.Length(min=1, max=TOKEN_MAX_LENGTH),
        metadata={"example": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicmVmcmVzaCJ9.sig"},
    )


class PasswordResetRequest(StrictSchema):
    """Body of ``POST /auth/password-reset``."""

    email = Email(required=True)


class PasswordResetConfirm(StrictSchema):
    """Body of ``POST /auth/password-reset/confirm``."""

    token = Text(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=RESET_TOKEN_MAX_LENGTH),
        metadata={
            "description": "The token from the reset email",
            "example": "Xq3sQm1vH2u9l0bEwYj8rN4tK6cA7dF5gP0oZ1iU2yT",
        },
    )
    new_password = new_password(required=True)


class PasswordResetAccepted(ma.Schema):
    """The answer to a reset request, the same whether or not the account exists."""

    message = ma.fields.String(
        required=True,
        metadata={
            "example": (
                "If an account exists for this email, a password reset link has been sent to it."
            )
        },
    )


class TokenPair(ma.Schema):
    """A new access token and the refresh token that replaces the one presented."""

    access_token = ma.fields.String(
        required=True,
        metadata={"example": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoiYWNjZXNzIn0.sig"},
    )
    refresh_token = ma.fields.String(
        required=True,
        metadata={"example": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicmVmcmVzaCJ9.sig"},
    )
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(
        required=True,
        metadata={"description": "Seconds until the access token expires", "example": 900},
    )


class User(ma.Schema):
    """A user as the API shows it (never the password hash)."""

    id = ma.fields.Integer(required=True, metadata={"example": 42})
    email = ma.fields.String(required=True, metadata={"example": "ada@example.com"})
    full_name = ma.fields.String(allow_none=True, metadata={"example": "Ada Lovelace"})
    role = ma.fields.String(required=True, metadata={"enum": list(ROLES), "example": "user"})
    is_active = ma.fields.Boolean(required=True, metadata={"example": True})
    created_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2025-01-31T09:30:00+00:00"}
    )
    updated_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2025-01-31T09:30:00+00:00"}
    )


class UserSelfUpdate(PatchSchema):
    """Body of ``PATCH /users/me``; ``role``, ``id`` and ``is_active`` are not accepted."""

    OPENAPI_RULES: ClassVar[dict[str, Any]] = {
        **PatchSchema.OPENAPI_RULES,
        # password only with current_password
        "anyOf": [{"not": {"required": ["password"]}}, {"required": ["current_password"]}],
    }

    email = Email()
    full_name = full_name_field()
    password = new_password()
    current_password = Text(
        load_only=True,
        validate=validate.Length(min=1, max=1024),
        metadata={
            "description": "Required with `password`; checked whenever present",
            "example": "my old passphrase",
        },
    )

    @ma.validates_schema
    def _current_password_with_password(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "password" in data and "current_password" not in data:
            raise ma.ValidationError(
                "Required to change the password.", field_name="current_password"
            )


class UserAdminUpdate(PatchSchema):
    """Body of ``PATCH /users/{user_id}`` (administrators)."""

    email = Email()
    full_name = full_name_field()
    role = ma.fields.String(validate=validate.OneOf(ROLES), metadata={"example": "admin"})
    is_active = ma.fields.Boolean(metadata={"example": False})


class UserQueryArgs(PageArgs):
    """Filters of ``GET /users``."""

    email = Text(
        validate=validate.Length(min=1, max=EMAIL_MAX_LENGTH),
        metadata={"description": "Substring of the email, case-insensitive"},
    )
    role = ma.fields.String(
        validate=validate.OneOf(ROLES), metadata={"description": "Only this role"}
    )
    is_active = ma.fields.Boolean(metadata={"description": "Only active (true) or inactive users"})


UserPage = page_schema(User, "UserPage")
