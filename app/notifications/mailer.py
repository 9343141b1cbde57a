"""Mail backends (``MAIL_BACKEND``): SMTP for real, console for development; building messages;
telling transient failures (retry later) from permanent ones (never retry)."""

from __future__ import annotations

import smtplib
import ssl
import sys
import uuid
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Literal, Protocol, TextIO

from app.config import Settings

SmtpSecurity = Literal["none", "starttls", "ssl"]


class InvalidAddress(ValueError):
    """The recipient is not a usable email address (a permanent failure)."""


class Mailer(Protocol):
    """Hands a built message to something that delivers it; raises when it was not taken."""

    def send(self, message: EmailMessage) -> object:
        """Send ``message``."""


def check_address(address: str) -> str:
    """``address`` if it is a plain ``local@domain`` address; ``InvalidAddress`` otherwise."""
    try:
        parsed = Address(addr_spec=address)
    except (HeaderParseError, ValueError, IndexError, TypeError):
        raise InvalidAddress("invalid recipient address") from None
    if not parsed.username or not parsed.domain or parsed.addr_spec != address:
        raise InvalidAddress("invalid recipient address")
    return address


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: uuid.UUID | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message: the text body, then the HTML one."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = check_address(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    # Derived from the row id: a resend after a crash carries the same Message-ID, so mail
    # systems and clients can recognise the duplicate.
    message["Message-ID"] = f"<{message_id or uuid.uuid4()}@{domain}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class SmtpMailer:
    """smtplib over plain TCP, STARTTLS or implicit TLS; TLS always verifies the certificate."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self._ssl_context = ssl_context

    def tls_context(self) -> ssl.SSLContext:
        """The context TLS connections use: the system's CAs and hostname checking."""
        return self._ssl_context or ssl.create_default_context()

    def connect(self) -> smtplib.SMTP:
        """An open, secured and (when configured) authenticated SMTP connection."""
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.tls_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                # Raises SMTPNotSupportedError when the server does not offer STARTTLS: never
                # fall back to sending the email (and the password) in clear text.
                client.starttls(context=self.tls_context())
            if self.username:
                client.login(self.username, self.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, message: EmailMessage) -> None:
        """Send ``message``; raises smtplib's (or the socket's) error when it was not accepted."""
        client = self.connect()
        try:
            client.send_message(message)
        except BaseException:
            client.close()
            raise
        # The message is accepted: a failing QUIT must not make it look unsent (and sent again).
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


class ConsoleMailer:
    """Development: print each email and keep it as a ``.eml`` file (open it in a mail client)."""

    def __init__(self, directory: Path, stream: TextIO | None = None) -> None:
        self.directory = directory
        self.stream = stream

    def send(self, message: EmailMessage) -> Path:
        """Write ``message`` to a new ``.eml`` file and print it; returns the file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(bytes(message))
        text_part = message.get_body(preferencelist=("plain",))
        text = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
        stream = self.stream or sys.stdout
        stream.write(
            f"----- email (saved to {path}) -----\n"
            f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n"
            f"{text.rstrip()}\n----- end of email -----\n"
        )
        stream.flush()
        return path


def build_mailer(settings: Settings) -> Mailer:
    """The backend ``MAIL_BACKEND`` names, configured from ``settings``."""
    if settings.MAIL_BACKEND == "console":
        return ConsoleMailer(settings.INSTANCE_PATH / "mail")
    if not settings.SMTP_HOST:
        raise InvalidMailConfig("SMTP_HOST: is not set")
    return SmtpMailer(
        host=settings.SMTP_HOST,
        port=settings.SMTP_PORT,
        security=settings.SMTP_SECURITY,
        username=settings.SMTP_USERNAME or None,
        password=settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None,
        timeout=settings.SMTP_TIMEOUT_SECONDS,
    )


class InvalidMailConfig(RuntimeError):
    """The mail settings cannot work (development or tests; production refuses to start)."""


def is_transient(error: BaseException) -> bool:
    """True when ``error`` may go away by itself (retry later); False when retrying is useless.

    Transient: the server unreachable, slow or hanging up, and 4xx replies ("try again later":
    421, 450, 451, 452, 454). Permanent: 5xx replies (an unknown mailbox, a rejected sender or
    login), a recipient refused with 5xx, an invalid address, a server without STARTTLS, and
    anything unexpected (retrying a bug sends nothing either).
    """
    if isinstance(error, InvalidAddress | InvalidMailConfig):
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True  # a greeting refused or a dropped line: the server, not this email
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPException):
        return False  # no STARTTLS or AUTH support, no common auth method: configuration
    # Connection refused or reset, DNS failure, timeouts, TLS handshake: all OSError.
    return isinstance(error, OSError | TimeoutError)


def describe(error: BaseException) -> str:
    """A short, body-free description of ``error`` for ``last_error`` and logs."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _message in error.recipients.values()})
        return f"SMTPRecipientsRefused: {', '.join(str(code) for code in codes)}"
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return f"{type(error).__name__}: {error.smtp_code} {text}"[:500]
    return f"{type(error).__name__}: {error}"[:500]
