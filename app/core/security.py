"""Password hashing (argon2id) and JWT encoding/decoding (pyjwt, HS256)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.config import Settings

TokenType = Literal["access", "refresh"]
JWT_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "type", "iss", "aud", "sid"]


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or of the wrong type."""


class PasswordHashing:
    """argon2id hashing whose cost comes from settings; old hashes are upgraded on login."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.PASSWORD_HASH_TIME_COST,
            memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
            parallelism=settings.PASSWORD_HASH_PARALLELISM,
        )
        # A real hash to verify against when the account does not exist, so that login takes
        # the same time for unknown emails and wrong passwords.
        self._decoy = self._hasher.hash(uuid.uuid4().hex)

    def hash(self, password: str) -> str:
        """The argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; spends the same effort when there is no hash."""
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of a token."""

    subject: int
    token_type: TokenType
    token_id: str
    session_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    """An encoded token and the identifiers stored server-side."""

    token: str
    token_id: str
    expires_at: datetime


class TokenCodec:
    """Encodes and strictly decodes the service's JWTs."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.jwt_key
        self._issuer = settings.JWT_ISSUER
        self._audience = settings.JWT_AUDIENCE
        self._ttl: dict[TokenType, timedelta] = {
            "access": timedelta(seconds=settings.ACCESS_TOKEN_TTL_SECONDS),
            "refresh": timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
        }

    @property
    def access_ttl(self) -> timedelta:
        """Lifetime of an access token."""
        return self._ttl["access"]

    def encode(
        self,
        *,
        subject: int,
        token_type: TokenType,
        session_id: uuid.UUID,
        now: datetime | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token of ``token_type`` for user ``subject`` in login session ``session_id``."""
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_at = issued_at + self._ttl[token_type]
        token_id = uuid.uuid4().hex
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(subject),
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id,
            "type": token_type,
            "sid": str(session_id),
        }
        token = jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM)
        return IssuedToken(token=token, token_id=token_id, expires_at=expires_at)

    def decode(self, token: str, *, expected_type: TokenType) -> TokenClaims:
        """Check signature, algorithm, expiry, issuer, audience and type; raise ``InvalidToken``."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],  # pinned: "none" and key-confusion attacks fail here
                issuer=self._issuer,
                audience=self._audience,
                options={"require": _REQUIRED_CLAIMS},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if claims.get("type") != expected_type:
            raise InvalidToken(f"expected a {expected_type} token")
        try:
            subject = int(claims["sub"])
            session_id = uuid.UUID(str(claims["sid"]))
        except (TypeError, ValueError):
            raise InvalidToken("malformed subject or session") from None
        return TokenClaims(
            subject=subject,
            token_type=expected_type,
            token_id=str(claims["jti"]),
            session_id=session_id,
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def password_hashing() -> PasswordHashing:
    """The app's password hasher (inside an app context)."""
    from flask import current_app

    hashing: PasswordHashing = current_app.extensions["password_hashing"]
    return hashing


def token_codec() -> TokenCodec:
    """The app's token codec (inside an app context)."""
    from flask import current_app

    codec: TokenCodec = current_app.extensions["token_codec"]
    return codec
