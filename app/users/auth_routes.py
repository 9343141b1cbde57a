"""``/api/v1/auth``: register, log in, refresh the token pair, log out."""

from __future__ import annotations

from typing import Any

from app.core.api import Blueprint
from app.core.auth import current_principal
from app.extensions import db
from app.users import auth_service, schemas
from app.users.auth_service import TokenPair
from app.users.models import User

blp = Blueprint(
    "auth",
    __name__,
    url_prefix="/auth",
    description="Registration, login, token refresh (rotated on every use) and logout",
)

# RFC 6749 section 5.1: responses carrying tokens must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/register", methods=["POST"])
@blp.arguments(schemas.UserRegister)
@blp.response(201, schemas.User)
@blp.errors(409, 422)
@blp.doc(operationId="register")
def register(body: dict[str, Any]) -> User:
    """Create an account (the email is normalised; 409 when taken, in any letter case)."""
    return auth_service.register(session=db.session(), **body)


@blp.route("/login", methods=["POST"])
@blp.arguments(schemas.LoginCredentials)
@blp.response(200, schemas.TokenPair)
@blp.errors(401, 422)
@blp.doc(operationId="login")
def login(body: dict[str, Any]) -> tuple[TokenPair, int, dict[str, str]]:
    """Exchange email and password for an access token and a refresh token."""
    pair = auth_service.login(session=db.session(), email=body["email"], password=body["password"])
    return pair, 200, NO_STORE


@blp.route("/refresh", methods=["POST"])
@blp.arguments(schemas.RefreshRequest)
@blp.response(200, schemas.TokenPair)
@blp.errors(401, 422)
@blp.doc(operationId="refreshTokens")
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
