"""Mail backends against a real SMTP server (aiosmtpd), the console backend, message building,
and which failures are worth a retry."""

from __future__ import annotations

import io
import smtplib
import socket
import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import load_settings
from app.notifications.mailer import (
    ConsoleMailer,
    InvalidAddress,
    SmtpMailer,
    build_mailer,
    build_message,
    check_address,
    describe,
    is_transient,
)
from tests.support.services import free_port
from tests.support.smtp import Certificate, SmtpSink, html_of, make_certificate, text_of


def sample_message(to: str = "ada@example.com") -> EmailMessage:
    return build_message(
        sender="Service <no-reply@example.com>",
        to=to,
        subject="Hello Ada",
        text="Plain body\n",
        html="<p>HTML body</p>\n",
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


# --- building ------------------------------------------------------------------------------


def test_message_has_a_text_and_an_html_alternative() -> None:
    message = sample_message()
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message["To"] == "ada@example.com"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Date"]


@pytest.mark.parametrize(
    "address",
    ["", "ada", "ada@", "@example.com", "ada@example.com, eve@example.com", "a\nb@example.com"],
)
def test_an_invalid_recipient_is_refused(address: str) -> None:
    with pytest.raises(InvalidAddress):
        check_address(address)
    with pytest.raises(InvalidAddress):
        sample_message(to=address)


# --- SMTP ----------------------------------------------------------------------------------


def test_smtp_delivers_both_parts_to_a_real_server() -> None:
    with SmtpSink() as sink:
        SmtpMailer(host="127.0.0.1", port=sink.port, security="none").send(sample_message())
        [received] = sink.messages
        assert sink.handler.recipients == [["ada@example.com"]]
    assert received["Subject"] == "Hello Ada"
    assert text_of(received).strip() == "Plain body"  # line ends are CRLF on the wire
    assert html_of(received).strip() == "<p>HTML body</p>"


def logging_in_mailer(sink: SmtpSink, certificate: Certificate, *, password: str) -> SmtpMailer:
    """A mailer that upgrades to TLS with ``sink`` (trusting ``certificate``) and logs in as
    ``mailer`` with ``password``."""
    return SmtpMailer(
        host="127.0.0.1",
        port=sink.port,
        security="starttls",
        username="mailer",
        password=password,
        ssl_context=certificate.client_context(),
    )


def test_starttls_upgrades_and_logs_in_with_a_verified_certificate(
    certificate: Certificate,
) -> None:
    with SmtpSink(starttls=certificate, require_auth=True) as sink:
        mailer = logging_in_mailer(sink, certificate, password="s3cret")
        mailer.send(sample_message())
        assert len(sink.messages) == 1
        assert sink.handler.logins == [(b"mailer", b"s3cret")]


def test_a_wrong_smtp_password_is_a_permanent_failure(certificate: Certificate) -> None:
    with SmtpSink(starttls=certificate, require_auth=True) as sink:
        mailer = logging_in_mailer(sink, certificate, password="wrong")
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            mailer.send(sample_message())
        assert sink.messages == []
    assert not is_transient(caught.value)


def test_implicit_tls_delivers(certificate: Certificate) -> None:
    with SmtpSink(implicit_tls=certificate) as sink:
        SmtpMailer(
            host="127.0.0.1",
            port=sink.port,
            security="ssl",
            ssl_context=certificate.client_context(),
        ).send(sample_message())
        assert len(sink.messages) == 1


def test_starttls_never_falls_back_to_clear_text() -> None:
    with SmtpSink() as sink:  # offers no STARTTLS
        mailer = SmtpMailer(host="127.0.0.1", port=sink.port, security="starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError) as caught:
            mailer.send(sample_message())
        assert sink.messages == []
    assert not is_transient(caught.value)


def test_tls_refuses_an_untrusted_certificate(certificate: Certificate) -> None:
    with SmtpSink(implicit_tls=certificate) as sink:
        # The default context trusts the system CAs only, not the throwaway certificate.
        mailer = SmtpMailer(host="127.0.0.1", port=sink.port, security="ssl", timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            mailer.send(sample_message())
        assert sink.messages == []


def test_a_server_that_is_down_is_a_transient_failure() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), security="none", timeout=2)
    with pytest.raises(ConnectionRefusedError) as caught:
        mailer.send(sample_message())
    assert is_transient(caught.value)


def test_a_greylisting_server_is_transient_and_an_unknown_mailbox_permanent() -> None:
    with SmtpSink() as sink:
        sink.handler.rcpt_replies.extend(["451 4.7.1 Greylisted, try again later"])
        sink.handler.rcpt_replies.extend(["550 5.1.1 No such user"])
        mailer = SmtpMailer(host="127.0.0.1", port=sink.port, security="none")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as greylisted:
            mailer.send(sample_message())
        with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
            mailer.send(sample_message())
        mailer.send(sample_message())
        assert len(sink.messages) == 1
    assert is_transient(greylisted.value)
    assert not is_transient(unknown.value)
    assert describe(unknown.value) == "SMTPRecipientsRefused: 550"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError("timed out"), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True),
        (smtplib.SMTPConnectError(421, b"Too busy"), True),
        (smtplib.SMTPResponseException(421, b"Service not available"), True),
        (smtplib.SMTPDataError(450, b"Mailbox busy"), True),
        (smtplib.SMTPDataError(451, b"Local error"), True),
        (smtplib.SMTPSenderRefused(452, b"Insufficient storage", "a@example.com"), True),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"busy")}), True),
        (smtplib.SMTPDataError(554, b"Rejected as spam"), False),
        (smtplib.SMTPSenderRefused(553, b"Sender not allowed", "a@example.com"), False),
        (smtplib.SMTPAuthenticationError(535, b"Bad credentials"), False),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}), False),
        (
            smtplib.SMTPRecipientsRefused(
                {"a@example.com": (450, b"busy"), "b@example.com": (550, b"unknown")}
            ),
            False,
        ),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), False),
        (InvalidAddress("invalid recipient address"), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_classification(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_failing_quit_after_acceptance_does_not_count_as_a_failure() -> None:
    class HangsUpOnQuit(smtplib.SMTP):
        def quit(self) -> tuple[int, bytes]:
            raise smtplib.SMTPServerDisconnected("gone")

    class Mailer(SmtpMailer):
        def connect(self) -> smtplib.SMTP:
            return HangsUpOnQuit(self.host, self.port, timeout=self.timeout)

    with SmtpSink() as sink:
        Mailer(host="127.0.0.1", port=sink.port, security="none").send(sample_message())
        assert len(sink.messages) == 1


# --- console -------------------------------------------------------------------------------


def test_console_prints_the_email_and_saves_an_eml_file(tmp_path: Path) -> None:
    stream = io.StringIO()
    path = ConsoleMailer(tmp_path / "mail", stream=stream).send(sample_message())
    assert path.parent == tmp_path / "mail"
    assert path.suffix == ".eml"
    saved = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(saved, EmailMessage)
    assert text_of(saved) == "Plain body\n"
    assert html_of(saved) == "<p>HTML body</p>\n"
    printed = stream.getvalue()
    assert "Subject: Hello Ada" in printed
    assert "Plain body" in printed
    assert str(path) in printed


# --- choosing the backend ------------------------------------------------------------------


def test_development_defaults_to_the_console_under_the_instance_folder(tmp_path: Path) -> None:
    settings = load_settings(APP_ENV="testing", INSTANCE_PATH=str(tmp_path))
    mailer = build_mailer(settings)
    assert isinstance(mailer, ConsoleMailer)
    assert mailer.directory == tmp_path / "mail"


def test_smtp_backend_takes_every_setting() -> None:
    settings = load_settings(
        APP_ENV="testing",
        MAIL_BACKEND="smtp",
        SMTP_HOST="smtp.example.com",
        SMTP_PORT="465",
        SMTP_SECURITY="ssl",
        SMTP_USERNAME="mailer",
        SMTP_PASSWORD="s3cret",
        SMTP_TIMEOUT_SECONDS="3.5",
    )
    assert isinstance(settings.SMTP_PASSWORD, SecretStr)
    assert "s3cret" not in repr(settings)
    mailer = build_mailer(settings)
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.security) == ("smtp.example.com", 465, "ssl")
    assert (mailer.username, mailer.password, mailer.timeout) == ("mailer", "s3cret", 3.5)
    # The default TLS context verifies the certificate and the host name.
    context = mailer.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
