"""JWT encoding/decoding and argon2id password hashing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from app.config import Settings, load_settings
from app.core.security import JWT_ALGORITHM, InvalidToken, PasswordHashing, TokenCodec

SESSION_ID = uuid.UUID("6d1f7f59-3c53-4a47-9a0e-1d2b8f3e6c11")


def settings(**overrides: Any) -> Settings:
    """Testing settings with ``overrides``."""
    return load_settings(APP_ENV="testing", **overrides)


@pytest.fixture
def codec() -> TokenCodec:
    """A codec with the testing key, issuer and audience."""
    return TokenCodec(settings())


def valid_claims(**changes: Any) -> dict[str, Any]:
    """Claims the testing codec accepts as an access token; ``None`` removes a claim."""
    config = settings()
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": config.JWT_ISSUER,
        "aud": config.JWT_AUDIENCE,
        "sub": "42",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        "type": "access",
        "sid": str(SESSION_ID),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def sign(claims: dict[str, Any], *, key: str | None = None, algorithm: str = JWT_ALGORITHM) -> str:
    """Sign ``claims`` with the testing key (or ``key``)."""
    return jwt.encode(claims, key or settings().jwt_key, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    """Base64url JSON without padding, as in a JWT segment."""
    raw = json.dumps(data, default=lambda value: int(value.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token_type", ["access", "refresh"])
def test_round_trip(codec: TokenCodec, token_type: Any) -> None:
    issued = codec.encode(subject=42, token_type=token_type, session_id=SESSION_ID)
    claims = codec.decode(issued.token, expected_type=token_type)
    assert claims.subject == 42
    assert claims.token_type == token_type
    assert claims.session_id == SESSION_ID
    assert claims.token_id == issued.token_id
    assert claims.expires_at == issued.expires_at
    assert claims.expires_at > claims.issued_at


def test_token_lifetimes_come_from_settings() -> None:
    codec = TokenCodec(settings(ACCESS_TOKEN_TTL_SECONDS=60, REFRESH_TOKEN_TTL_SECONDS=7200))
    access = codec.decode(
        codec.encode(subject=1, token_type="access", session_id=SESSION_ID).token,
        expected_type="access",
    )
    refresh = codec.decode(
        codec.encode(subject=1, token_type="refresh", session_id=SESSION_ID).token,
        expected_type="refresh",
    )
    assert access.expires_at - access.issued_at == timedelta(seconds=60)
    assert refresh.expires_at - refresh.issued_at == timedelta(seconds=7200)


def test_every_token_has_its_own_id(codec: TokenCodec) -> None:
    first = codec.encode(subject=1, token_type="access", session_id=SESSION_ID)
    second = codec.encode(subject=1, token_type="access", session_id=SESSION_ID)
    assert first.token_id != second.token_id


def test_a_hand_signed_valid_token_is_accepted(codec: TokenCodec) -> None:
    """The control case: the refusals below differ from this token in one way only."""
    assert codec.decode(sign(valid_claims()), expected_type="access").subject == 42


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "type", "iss", "aud", "sid"])
def test_a_missing_required_claim_is_refused(codec: TokenCodec, claim: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(**{claim: None})), expected_type="access")


def test_a_refresh_token_is_not_an_access_token(codec: TokenCodec) -> None:
    refresh = codec.encode(subject=42, token_type="refresh", session_id=SESSION_ID)
    with pytest.raises(InvalidToken, match="access"):
        codec.decode(refresh.token, expected_type="access")


def test_an_access_token_is_not_a_refresh_token(codec: TokenCodec) -> None:
    access = codec.encode(subject=42, token_type="access", session_id=SESSION_ID)
    with pytest.raises(InvalidToken):
        codec.decode(access.token, expected_type="refresh")


@pytest.mark.parametrize("token_type", ["id", "", "ACCESS"])
def test_an_unknown_token_type_is_refused(codec: TokenCodec, token_type: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(type=token_type)), expected_type="access")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(codec: TokenCodec, alg: str) -> None:
    unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(valid_claims())}."
    with pytest.raises(InvalidToken):
        codec.decode(unsigned, expected_type="access")


# The forger is happy to sign with a short key; the warning is about them, not us.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_the_right_key(
    codec: TokenCodec, algorithm: str
) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(), algorithm=algorithm), expected_type="access")


def test_a_token_signed_with_another_key_is_refused(codec: TokenCodec) -> None:
    forged = sign(valid_claims(), key="another-key-that-is-at-least-32-bytes-long")
    with pytest.raises(InvalidToken):
        codec.decode(forged, expected_type="access")


def test_a_tampered_payload_is_refused(codec: TokenCodec) -> None:
    header, _payload, signature = sign(valid_claims()).split(".")
    tampered = f"{header}.{b64(valid_claims(sub='1'))}.{signature}"
    with pytest.raises(InvalidToken):
        codec.decode(tampered, expected_type="access")


def test_an_expired_token_is_refused(codec: TokenCodec) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    issued = codec.encode(subject=42, token_type="access", session_id=SESSION_ID, now=long_ago)
    with pytest.raises(InvalidToken, match="expired"):
        codec.decode(issued.token, expected_type="access")


def test_a_wrong_issuer_is_refused(codec: TokenCodec) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(iss="someone-else")), expected_type="access")


def test_a_wrong_audience_is_refused(codec: TokenCodec) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(aud="another-api")), expected_type="access")


def test_tokens_of_another_deployment_are_refused() -> None:
    """Same key, other issuer and audience (a staging token replayed on production)."""
    staging = TokenCodec(settings(JWT_ISSUER="staging", JWT_AUDIENCE="staging-api"))
    production = TokenCodec(settings())
    token = staging.encode(subject=42, token_type="access", session_id=SESSION_ID).token
    with pytest.raises(InvalidToken):
        production.decode(token, expected_type="access")


@pytest.mark.parametrize(("claim", "value"), [("sub", "admin"), ("sid", "not-a-uuid")])
def test_malformed_subject_or_session_is_refused(codec: TokenCodec, claim: str, value: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign(valid_claims(**{claim: value})), expected_type="access")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_garbage_is_refused(codec: TokenCodec, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(garbage, expected_type="access")


def test_jwt_secret_key_takes_precedence_over_secret_key() -> None:
    dedicated = TokenCodec(settings(JWT_SECRET_KEY="j" * 40))
    token = dedicated.encode(subject=1, token_type="access", session_id=SESSION_ID).token
    with pytest.raises(InvalidToken):
        TokenCodec(settings()).decode(token, expected_type="access")
    assert dedicated.decode(token, expected_type="access").subject == 1


# --- passwords -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    """Hashing with the (cheap) testing parameters."""
    return PasswordHashing(settings())


def test_hash_is_argon2id_and_salted(hashing: PasswordHashing) -> None:
    first = hashing.hash("correct horse battery staple")
    second = hashing.hash("correct horse battery staple")
    assert first.startswith("$argon2id$")
    assert first != second
    assert "correct horse" not in first


def test_verify_accepts_the_password_and_refuses_others(hashing: PasswordHashing) -> None:
    stored = hashing.hash("correct horse battery staple")
    assert hashing.verify(stored, "correct horse battery staple") is True
    assert hashing.verify(stored, "correct horse battery stapl") is False
    assert hashing.verify(stored, "") is False


def test_verify_without_a_hash_is_false(hashing: PasswordHashing) -> None:
    assert hashing.verify(None, "anything") is False
    assert hashing.verify("", "anything") is False


def test_verify_with_a_corrupt_hash_is_false(hashing: PasswordHashing) -> None:
    assert hashing.verify("not-a-hash", "anything") is False
    assert hashing.verify("$argon2id$v=19$m=8,t=1,p=1$broken", "anything") is False


def test_needs_rehash_when_parameters_change(hashing: PasswordHashing) -> None:
    stored = hashing.hash("correct horse battery staple")
    assert hashing.needs_rehash(stored) is False
    stronger = PasswordHashing(settings(PASSWORD_HASH_TIME_COST=2, PASSWORD_HASH_MEMORY_KIB=16))
    assert stronger.needs_rehash(stored) is True
    # The old hash still verifies, so login can upgrade it.
    assert stronger.verify(stored, "correct horse battery staple") is True
    assert stronger.needs_rehash(stronger.hash("correct horse battery staple")) is False
