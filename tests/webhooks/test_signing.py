"""Signing secrets (format, encryption at rest, key rotation), signatures, and the HTTP sender."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.config import Settings, load_settings
from app.core.database import utcnow
from app.webhooks.crypto import SecretUnreadable, decrypt_secret, encrypt_secret, generate_secret
from app.webhooks.sender import HttpOptions, OutcomeKind, classify, post
from app.webhooks.signing import message_body, signature_headers
from app.webhooks.ssrf import UrlPolicy
from tests.webhooks.receiver import Receiver, always, running

LOOPBACK = UrlPolicy(allowed_ports=frozenset(), allow_private=True)


def options(**changes: object) -> HttpOptions:
    values: dict[str, object] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "max_response_bytes": 1024,
        "user_agent": "svc-webhooks/1.0",
    }
    values.update(changes)
    return HttpOptions(**values)  # type: ignore[arg-type]


def settings(**values: object) -> Settings:
    return load_settings(APP_ENV="testing", **values)


def test_secrets_follow_the_standard_webhooks_format_and_are_unique() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


def test_secrets_are_encrypted_and_round_trip() -> None:
    config = settings()
    secret = generate_secret()
    ciphertext = encrypt_secret(config, secret)
    assert secret not in ciphertext
    assert secret.removeprefix("whsec_") not in ciphertext
    assert decrypt_secret(config, ciphertext) == secret
    assert encrypt_secret(config, secret) != ciphertext  # random IV: equal secrets look different


def test_another_key_cannot_decrypt() -> None:
    ciphertext = encrypt_secret(settings(), generate_secret())
    other = settings(SECRET_KEY="another-secret-key-that-is-long-enough-0123")
    with pytest.raises(SecretUnreadable):
        decrypt_secret(other, ciphertext)


def test_key_rotation_keeps_old_ciphertexts_readable() -> None:
    secret = generate_secret()
    derived_from_secret_key = encrypt_secret(settings(), secret)
    old = settings(WEBHOOK_SECRET_KEY=SecretStr("old-key"))
    written_with_old = encrypt_secret(old, secret)
    rotated = settings(WEBHOOK_SECRET_KEY=SecretStr("new-key, old-key"))
    assert decrypt_secret(rotated, written_with_old) == secret
    assert decrypt_secret(rotated, derived_from_secret_key) == secret
    with pytest.raises(SecretUnreadable):  # the new key writes what the old one cannot read
        decrypt_secret(old, encrypt_secret(rotated, secret))


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = generate_secret()
    occurred = utcnow() - timedelta(hours=1)
    body = message_body(event_name="task.created", occurred_at=occurred, payload={"task_id": 7})
    headers = signature_headers(secret=secret, message_id="msg-1", sent_at=utcnow(), body=body)
    assert headers["webhook-id"] == "msg-1"
    payload = StandardWebhook(secret).verify(body, headers)
    assert payload == {
        "type": "task.created",
        "timestamp": occurred.isoformat(),
        "data": {"task_id": 7},
    }
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(body.replace("7", "8"), headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.SUCCESS),
        (202, OutcomeKind.SUCCESS),
        (204, OutcomeKind.SUCCESS),
        (301, OutcomeKind.PERMANENT),
        (302, OutcomeKind.PERMANENT),
        (307, OutcomeKind.PERMANENT),
        (400, OutcomeKind.PERMANENT),
        (401, OutcomeKind.PERMANENT),
        (404, OutcomeKind.PERMANENT),
        (410, OutcomeKind.PERMANENT),
        (422, OutcomeKind.PERMANENT),
        (408, OutcomeKind.TRANSIENT),
        (429, OutcomeKind.TRANSIENT),
        (500, OutcomeKind.TRANSIENT),
        (502, OutcomeKind.TRANSIENT),
        (503, OutcomeKind.TRANSIENT),
        (504, OutcomeKind.TRANSIENT),
    ],
)
def test_status_codes_are_classified(status: int, kind: OutcomeKind) -> None:
    outcome = classify(status, None)
    assert outcome.kind is kind
    assert outcome.status_code == status


def test_retry_after_is_read_on_429_and_503_only() -> None:
    assert classify(429, "7").retry_after == 7.0
    assert classify(503, "120").retry_after == 120.0
    assert classify(500, "7").retry_after is None


def test_post_sends_json_with_the_signature_headers(receiver: Receiver) -> None:
    secret = generate_secret()
    body = message_body(event_name="task.created", occurred_at=utcnow(), payload={"a": "é"})
    headers = signature_headers(secret=secret, message_id="d-1", sent_at=utcnow(), body=body)
    outcome = post(
        receiver.url, body=body.encode(), headers=headers, policy=LOOPBACK, options=options()
    )
    assert outcome.kind is OutcomeKind.SUCCESS
    [request] = receiver.snapshot()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "svc-webhooks/1.0"
    assert json.loads(request.body)["data"] == {"a": "é"}
    StandardWebhook(secret).verify(request.body, request.headers)


def test_a_redirect_to_a_private_address_is_not_followed(receiver: Receiver) -> None:
    with running(Receiver()) as internal:
        receiver.responder = always(302, {"Location": f"{internal.url}/admin"})
        outcome = post(receiver.url, body=b"{}", headers={}, policy=LOOPBACK, options=options())
        assert internal.count() == 0
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.status_code == 302
    assert outcome.error == "HTTP 302: redirects are not followed"


def test_a_slow_endpoint_times_out_as_a_transient_failure(receiver: Receiver) -> None:
    receiver.delay = 0.5
    outcome = post(
        receiver.url, body=b"{}", headers={}, policy=LOOPBACK, options=options(read_timeout=0.1)
    )
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.error == "timed out"


def test_connection_refused_is_transient() -> None:
    with running(Receiver()) as closed:
        url = closed.url
    outcome = post(url, body=b"{}", headers={}, policy=LOOPBACK, options=options())
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.error is not None
    assert outcome.error.startswith("ConnectionRefusedError")


def test_a_huge_response_is_read_only_up_to_the_cap(receiver: Receiver) -> None:
    receiver.responder = lambda _n: (200, {}, b"x" * 5_000_000)
    outcome = post(
        receiver.url,
        body=b"{}",
        headers={},
        policy=LOOPBACK,
        options=options(max_response_bytes=10),
    )
    assert outcome.kind is OutcomeKind.SUCCESS


def test_a_refused_url_is_a_permanent_failure_without_any_request() -> None:
    strict = UrlPolicy(allowed_ports=frozenset({80}))
    outcome = post(
        "http://127.0.0.1/hook", body=b"{}", headers={}, policy=strict, options=options()
    )
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.error is not None
    assert outcome.error.startswith("URL refused:")
