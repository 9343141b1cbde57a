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

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import ConfigError, Settings

# A fixed label: the same SECRET_KEY yields a different key for every purpose. No service name
# in it, so `make rename` never changes the key that opens queued emails.
HKDF_INFO = b"notifications/sealed-context/v1"
# The label before it (it held the service's name); contexts sealed under it still open.
LEGACY_HKDF_INFO = b"flask-service-template/notifications/sealed-context/v1"


class SealedContextUnreadable(Exception):
    """The sealed context cannot be decrypted (SECRET_KEY changed since it was queued)."""


def _fernet(settings: Settings) -> MultiFernet:
    """Seals with the current label's key; opens with it or the legacy label's."""
    if settings.SECRET_KEY is None:
        raise ConfigError("SECRET_KEY: is not set")
    material = settings.SECRET_KEY.get_secret_value().encode()
    return MultiFernet([Fernet(_key(material, info)) for info in (HKDF_INFO, LEGACY_HKDF_INFO)])


def _key(material: bytes, info: bytes) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)
    return base64.urlsafe_b64encode(key)


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
