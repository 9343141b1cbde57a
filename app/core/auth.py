"""Who is calling: bearer-token authentication shared by every feature.

Core decodes the token; the identity feature, injected by the app factory through
``init_auth``, decides whether its user and login session are still valid. That keeps
this module free of feature imports.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from app.core.errors import Forbidden, Unauthorized
from app.core.security import InvalidToken, TokenClaims, token_codec

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    role: str
    session_id: uuid.UUID

    @property
    def is_admin(self) -> bool:
        """True for administrators."""
        return self.role == ADMIN_ROLE


# Given verified access-token claims, return the principal or raise ``Unauthorized``.
PrincipalResolver = Callable[[TokenClaims], Principal]


RESOLVER_KEY = "principal_resolver"


def init_auth(app: Flask, resolver: PrincipalResolver) -> None:
    """Use ``resolver`` to check that a token's user and login session are still valid."""
    app.extensions[RESOLVER_KEY] = resolver

    @app.before_request
    def _forget_previous_caller() -> None:
        # ``g`` lives as long as the app context, and a request reuses one already pushed (the
        # test fixtures, CLI-driven requests): never let one request see another's caller.
        g.pop("principal", None)
        g.pop("token_claims", None)


def bearer_claims() -> TokenClaims | None:
    """Claims of a valid access token in the request, or None (cached per request)."""
    if "token_claims" in g:
        cached: TokenClaims | None = g.token_claims
        return cached
    claims: TokenClaims | None = None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            claims = token_codec().decode(token.strip(), expected_type="access")
        except InvalidToken:
            claims = None
    g.token_claims = claims
    return claims


def current_principal() -> Principal:
    """The authenticated caller; raises ``Unauthorized`` without a valid, live access token."""
    if "principal" in g:
        principal: Principal = g.principal
        return principal
    if not request.headers.get("Authorization"):
        raise Unauthorized("A bearer access token is required.")
    claims = bearer_claims()
    if claims is None:
        raise Unauthorized("The access token is invalid or expired.")
    resolver: PrincipalResolver = current_app.extensions[RESOLVER_KEY]
    g.principal = resolver(claims)
    return g.principal  # type: ignore[no-any-return]


def require_admin(principal: Principal) -> None:
    """Raise ``Forbidden`` unless ``principal`` is an administrator."""
    if not principal.is_admin:
        raise Forbidden("Administrator role required.")
