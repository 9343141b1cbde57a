"""Signing secrets: generated in the Standard Webhooks format, stored Fernet-encrypted."""

from __future__ import annotations

import base64
import functools
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import ConfigError, Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# A fixed label: the same key material yields a different key for every purpose. No service
# name in it, so `make rename` never changes the key that opens the stored secrets.
HKDF_INFO = b"webhooks/signing-secret-encryption/v1"
# The label before it (it held the service's name); secrets stored under it still open.
LEGACY_HKDF_INFO = b"flask-service-template/webhooks/signing-secret-encryption/v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the encryption key changed)."""


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _fernet_key(material: str, info: bytes = HKDF_INFO) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material.encode())
    return base64.urlsafe_b64encode(key)


def _box(settings: Settings) -> MultiFernet:
    """Encrypt with the first key; decrypt with any (rotation), SECRET_KEY's key last."""
    materials: list[str] = []
    if settings.WEBHOOK_SECRET_KEY is not None:
        raw = settings.WEBHOOK_SECRET_KEY.get_secret_value()
        materials += [part.strip() for part in raw.split(",") if part.strip()]
    if settings.SECRET_KEY is not None:
        # Kept as a decryption key so that setting WEBHOOK_SECRET_KEY later loses nothing.
        materials.append(settings.SECRET_KEY.get_secret_value())
    if not materials:
        raise ConfigError("WEBHOOK_SECRET_KEY: neither it nor SECRET_KEY is set")
    return _box_of(tuple(materials))


@functools.lru_cache(maxsize=8)
def _box_of(materials: tuple[str, ...]) -> MultiFernet:
    """The keys of ``materials``, derived once per process (not once per delivery); the legacy
    label's keys come last, for decryption only."""
    return MultiFernet(
        [Fernet(_fernet_key(material)) for material in materials]
        + [Fernet(_fernet_key(material, LEGACY_HKDF_INFO)) for material in materials]
    )


def encrypt_secret(settings: Settings, secret: str) -> str:
    """The ciphertext to store for ``secret``."""
    return _box(settings).encrypt(secret.encode()).decode()


def decrypt_secret(settings: Settings, ciphertext: str) -> str:
    """The secret stored as ``ciphertext``; ``SecretUnreadable`` if no key opens it."""
    try:
        return _box(settings).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the signing secret cannot be decrypted") from None
