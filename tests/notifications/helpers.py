"""Stand-in mailers for the delivery logic (the real backends are tested in test_mailer)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

from flask import current_app

from app.config import Settings


class RecordingMailer:
    """Accepts every message and keeps it."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


class FailingMailer:
    """Raises ``error`` (made fresh by the factory) on every send."""

    def __init__(self, make_error: Callable[[], Exception]) -> None:
        self.make_error = make_error
        self.calls = 0

    def send(self, message: EmailMessage) -> None:
        self.calls += 1
        raise self.make_error()


def settings(**changes: object) -> Settings:
    """The running app's settings with ``changes``."""
    current: Settings = current_app.extensions["settings"]
    return current.model_copy(update=changes)
