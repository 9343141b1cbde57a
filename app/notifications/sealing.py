"""Encrypting the parts of an email's context that must not be readable in the database.

A password-reset email carries the plain reset token, which exists nowhere else: the database
keeps only its SHA-256. The queued email must still hold the token until it is sent (a retry needs
it), so it is kept Fernet-encrypted with a key derived from SECRET_KEY, and erased once the email
is finished. Reading it back takes both the database and SECRET_KEY, and SECRET_KEY alone already
signs access tokens, so the encrypted copy gives an attacker nothing more.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import ConfigError, Settings

# A fixed label: the same SECRET_KEY yields a different key for every purpose.
HKDF_INFO = b"flask-service-template/notifications/sealed-context/v1"


class SealedContextUnreadable(Exception):
    """The sealed context cannot be decrypted (SECRET_KEY changed since it was queued)."""


def _fernet(settings: Settings) -> Fernet:
    if settings.SECRET_KEY is None:
        raise ConfigError("SECRET_KEY: is not set")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        settings.SECRET_KEY.get_secret_value().encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(settings: Settings, values: dict[str, Any]) -> str:
    """The ciphertext of ``values`` (JSON)."""
    return _fernet(settings).encrypt(json.dumps(values).encode()).decode()


def unseal(settings: Settings, ciphertext: str) -> dict[str, Any]:
    """The values sealed as ``ciphertext``; ``SealedContextUnreadable`` if the key changed."""
    try:
        values: dict[str, Any] = json.loads(_fernet(settings).decrypt(ciphertext.encode()))
    except InvalidToken:
        raise SealedContextUnreadable("the sealed context cannot be decrypted") from None
    return values
