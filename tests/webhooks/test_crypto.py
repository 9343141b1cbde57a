"""The keys that open stored signing secrets and sealed emails do not depend on the service's
name, so `make rename` after a deployment loses nothing; secrets stored under the earlier,
named labels still open."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import PROJECT_ROOT, load_settings
from app.notifications import sealing
from app.webhooks import crypto
from tests.support.deploy_scripts import load_rename

SECRET_KEY = "k" * 48


def fernet_for(material: str, info: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@pytest.mark.parametrize("label", [crypto.HKDF_INFO, sealing.HKDF_INFO])
def test_no_spelling_of_the_service_name_is_in_a_key_label(label: bytes) -> None:
    service_name = load_rename().current_name(PROJECT_ROOT)
    assert service_name.pattern().search(label.decode()) is None


def test_a_secret_stored_under_the_legacy_label_still_opens() -> None:
    settings = load_settings(APP_ENV="testing", SECRET_KEY=SECRET_KEY)
    stored = fernet_for(SECRET_KEY, crypto.LEGACY_HKDF_INFO).encrypt(b"whsec_old").decode()

    assert crypto.decrypt_secret(settings, stored) == "whsec_old"


def test_new_secrets_are_stored_under_the_name_free_label() -> None:
    settings = load_settings(APP_ENV="testing", SECRET_KEY=SECRET_KEY)
    stored = crypto.encrypt_secret(settings, "whsec_new")

    assert fernet_for(SECRET_KEY, crypto.HKDF_INFO).decrypt(stored.encode()) == b"whsec_new"


def test_sealed_contexts_use_the_name_free_label_and_old_ones_still_open() -> None:
    settings = load_settings(APP_ENV="testing", SECRET_KEY=SECRET_KEY)
    sealed = sealing.seal(settings, {"token": "t"})
    old = fernet_for(SECRET_KEY, sealing.LEGACY_HKDF_INFO).encrypt(b'{"token": "old"}').decode()

    assert fernet_for(SECRET_KEY, sealing.HKDF_INFO).decrypt(sealed.encode()) == b'{"token": "t"}'
    assert sealing.unseal(settings, old) == {"token": "old"}
