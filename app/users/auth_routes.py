"""``/api/v1/auth``: register, log in, refresh the token pair, log out."""

from __future__ import annotations

from typing import Any

from app.core.api import Blueprint, ErrorSchema, links
from app.core.auth import current_principal
from app.core.limits import Rate, json_field_key, per_client_address
from app.extensions import db
from app.users import auth_service, reset_service, schemas
from app.users.auth_service import TokenPair, normalize_email
from app.users.models import User

blp = Blueprint(
    "auth",
    __name__,
    url_prefix="/auth",
    description=(
        "Registration, login, token refresh (rotated on every use), logout and password reset"
    ),
)

# Counted per email as it will be looked up, whatever the letter case or spacing sent.
PER_ACCOUNT = json_field_key("email", normalize_email)

# RFC 6749 section 5.1: responses carrying tokens must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/register", methods=["POST"])
@blp.limit(per_client_address("RATELIMIT_REGISTER_PER_IP"))
@blp.arguments(schemas.UserRegister)
@blp.response(201, schemas.User)
@blp.errors(409, 422)
@blp.doc(
    operationId="register",
    responses={
        201: {
            "links": {
                **links(
                    "login",
                    requestBody={
                        "email": "$response.body#/email",
                        "password": "$request.body#/password",
                    },
                ),
                **links("getUser", "updateUser", "deleteUser", user_id="$response.body#/id"),
            }
        }
    },
)
def register(body: dict[str, Any]) -> User:
    """Create an account (the email is normalised; 409 when taken, in any letter case)."""
    return auth_service.register(session=db.session(), **body)


@blp.route("/login", methods=["POST"])
@blp.limit(
    per_client_address("RATELIMIT_LOGIN_PER_IP"),
    Rate("RATELIMIT_LOGIN_PER_ACCOUNT", PER_ACCOUNT, "account"),
)
@blp.arguments(schemas.LoginCredentials)
@blp.response(200, schemas.TokenPair)
@blp.errors(401, 422)
@blp.doc(
    operationId="login",
    responses={
        200: {
            "links": links(
                "refreshTokens", requestBody={"refresh_token": "$response.body#/refresh_token"}
            )
        }
    },
)
def login(body: dict[str, Any]) -> tuple[TokenPair, int, dict[str, str]]:
    """Exchange email and password for an access token and a refresh token."""
    pair = auth_service.login(session=db.session(), email=body["email"], password=body["password"])
    return pair, 200, NO_STORE


@blp.route("/refresh", methods=["POST"])
@blp.limit(per_client_address("RATELIMIT_REFRESH_PER_IP"))
@blp.arguments(schemas.RefreshRequest)
@blp.response(200, schemas.TokenPair)
@blp.errors(401, 422)
@blp.doc(
    operationId="refreshTokens",
    responses={
        200: {
            "links": links(
                "refreshTokens", requestBody={"refresh_token": "$response.body#/refresh_token"}
            )
        }
    },
)
def refresh(body: dict[str, Any]) -> tuple[TokenPair, int, dict[str, str]]:
    """Rotate a refresh token; replaying a used one revokes its whole login session."""
    pair = auth_service.refresh(session=db.session(), refresh_token=body["refresh_token"])
    return pair, 200, NO_STORE


@blp.route("/logout", methods=["POST"])
@blp.auth()
@blp.response(204)
@blp.doc(operationId="logout")
def logout() -> None:
    """Revoke the caller's login session: its access and refresh tokens stop working."""
    auth_service.logout(session=db.session(), session_id=current_principal().session_id)


RESET_REQUESTED = "If an account exists for this email, a password reset link has been sent to it."
INVALID_RESET_TOKEN_EXAMPLE = {
    "code": reset_service.INVALID_RESET_TOKEN_CODE,
    "status": 400,
    "message": reset_service.INVALID_RESET_TOKEN,
    "request_id": "9f1c2b7e0d3a4c5b8e6f7a8b9c0d1e2f",
}


@blp.route("/password-reset", methods=["POST"])
@blp.limit(
    per_client_address("RATELIMIT_PASSWORD_RESET_PER_IP"),
    Rate("RATELIMIT_PASSWORD_RESET_PER_EMAIL", PER_ACCOUNT, "target email"),
)
@blp.arguments(schemas.PasswordResetRequest)
@blp.response(202, schemas.PasswordResetAccepted)
@blp.errors(422)
@blp.doc(operationId="requestPasswordReset")
def request_password_reset(body: dict[str, Any]) -> dict[str, str]:
    """Email a single-use reset link (always 202, so no one learns which emails have accounts)."""
    reset_service.request_password_reset(session=db.session(), email=body["email"])
    return {"message": RESET_REQUESTED}


@blp.route("/password-reset/confirm", methods=["POST"])
@blp.arguments(schemas.PasswordResetConfirm)
@blp.response(204)
@blp.alt_response(
    400,
    schema=ErrorSchema,
    description="The token is unknown, expired or already used (code `invalid_token`).",
    example=INVALID_RESET_TOKEN_EXAMPLE,
)
@blp.errors(422)
@blp.doc(operationId="confirmPasswordReset")
def confirm_password_reset(body: dict[str, Any]) -> None:
    """Set a new password with an emailed reset token; every session of the account ends."""
    reset_service.confirm_password_reset(
        session=db.session(), token=body["token"], new_password=body["new_password"]
    )
