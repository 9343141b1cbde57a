"""The SSRF guard: every refused address form, DNS names resolving to them, rebinding, pinning."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.config import Settings
from app.webhooks.sender import HttpOptions, OutcomeKind, post
from app.webhooks.ssrf import (
    PinnedHTTPSConnection,
    Target,
    UnresolvableHost,
    UnsafeUrl,
    UrlPolicy,
    check_url,
    refusal_reason,
)
from tests.webhooks.conftest import PUBLIC_ADDRESS, PUBLIC_HOST, answer
from tests.webhooks.receiver import Receiver, running

STRICT = UrlPolicy(allowed_ports=frozenset({80, 443, 8080, 8443}))
LOOPBACK_ALLOWED = UrlPolicy(allowed_ports=frozenset({443}), allow_private=True)
OPTIONS = HttpOptions(
    connect_timeout=1.0, read_timeout=1.0, max_response_bytes=1024, user_agent="tests"
)

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.7", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.10.1", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),
    ("::", "unspecified"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.2.10", "private"),  # documentation range
    ("198.18.0.1", "private"),  # benchmarking range
    ("2001:db8::1", "private"),  # documentation range
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:169.254.169.254", "IPv4-mapped"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),  # never needed: connect over IPv4 instead
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("2002:7f00:1::1", "6to4 address embedding a loopback"),
    ("2002:a9fe:a9fe::", "6to4 address embedding a link-local (cloud metadata)"),
    ("2002:c0a8:101::", "6to4 address embedding a private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("64:ff9b::7f00:1", "NAT64 address embedding a loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 address embedding a link-local (cloud metadata)"),
    ("64:ff9b::a00:1", "NAT64 address embedding a private"),
    ("64:ff9b:1::1", "local-use NAT64"),
]

PUBLIC_ADDRESSES = [
    "8.8.8.8",
    PUBLIC_ADDRESS,
    "2606:4700:4700::1111",
    "2002:808:808::1",  # 6to4 of a public address
    "64:ff9b::808:808",  # NAT64 of a public address
]

# Literal spellings of internal addresses; the OS resolver decodes each, the result is refused.
REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LocalHost:80/",
    "http://127.1/",
    "http://2130706433/",  # decimal
    "http://0x7f.1/",  # hex, short form
    "http://0x7f000001/",  # hex
    "http://017700000001/",  # octal
    "http://0177.0.0.1/",  # octal, dotted
    "http://0/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.0.1:8080/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "https://127.0.0.1:443/",
]


@pytest.mark.parametrize(("text", "reason"), REFUSED_ADDRESSES)
def test_non_global_addresses_are_refused_with_their_reason(text: str, reason: str) -> None:
    refused = refusal_reason(ipaddress.ip_address(text))
    assert refused is not None
    assert reason in refused


@pytest.mark.parametrize("text", PUBLIC_ADDRESSES)
def test_global_addresses_pass(text: str) -> None:
    assert refusal_reason(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_literal_forms_of_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="webhooks may only call public addresses"):
        check_url(url, STRICT)


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_dns_names_resolving_to_internal_addresses_are_refused(
    fake_dns: dict[str, list[str]], address: str, reason: str
) -> None:
    fake_dns["innocent.example.net"] = [address]
    with pytest.raises(UnsafeUrl, match=re.escape(reason)):
        check_url("https://innocent.example.net/hook", STRICT)


def test_every_resolved_address_must_be_global(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["mixed.example.net"] = [PUBLIC_ADDRESS, "2606:4700::1", "10.0.0.7"]
    with pytest.raises(UnsafeUrl, match=r"10\.0\.0\.7"):
        check_url("https://mixed.example.net/", STRICT)


def test_a_public_url_yields_the_checked_target(fake_dns: dict[str, list[str]]) -> None:
    target = check_url(f"https://{PUBLIC_HOST}/hooks/tasks?team=7#ignored", STRICT)
    assert target == Target(
        scheme="https",
        host=PUBLIC_HOST,
        port=443,
        address=PUBLIC_ADDRESS,
        request_target="/hooks/tasks?team=7",
    )


def test_international_host_names_are_idna_encoded(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["xn--bcher-kva.example"] = [PUBLIC_ADDRESS]
    assert check_url("https://bücher.example/", STRICT).host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with"),
        ("gopher://hooks.example.com:70/", "must start with"),
        ("javascript:alert(1)", "must start with"),
        ("hooks.example.com/path", "must start with"),
        ("http://user:secret@hooks.example.com/", "user name or password"),
        ("http://user@hooks.example.com/", "user name or password"),
        ("http://hooks.example.com:22/", "Port 22 is not allowed"),
        ("http://hooks.example.com:6379/", "Port 6379 is not allowed"),
        ("http://hooks.example.com:99999/", "malformed"),
        ("http://hooks.example.com:abc/", "malformed"),
        ("http:///path", "no host"),
        ("http://[fe80::1%25eth0]/", "IPv6 zone"),
        ("http://hooks.example.com/a b", "spaces or control characters"),
        ("http://hooks.example.com/\r\nX-Injected: 1", "spaces or control characters"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(
    fake_dns: dict[str, list[str]], url: str, message: str
) -> None:
    with pytest.raises(UnsafeUrl, match=message):
        check_url(url, STRICT)


def test_https_only_refuses_plain_http(fake_dns: dict[str, list[str]]) -> None:
    policy = UrlPolicy(allowed_ports=frozenset({80, 443}), require_https=True)
    with pytest.raises(UnsafeUrl, match="must start with https://"):
        check_url(f"http://{PUBLIC_HOST}/", policy)
    assert check_url(f"https://{PUBLIC_HOST}/", policy).scheme == "https"


def test_unresolvable_hosts_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UnresolvableHost, match="does not resolve"):
        check_url("https://nowhere.example/", STRICT)


def test_the_test_only_allowance_admits_loopback_on_any_port() -> None:
    target = check_url("http://127.0.0.1:54321/hook", LOOPBACK_ALLOWED)
    assert (target.address, target.port) == ("127.0.0.1", 54321)


PRIVATE_HOST_ALLOWED = UrlPolicy(
    allowed_ports=frozenset({443, 8443}), require_https=True, private_hosts=frozenset({"receiver"})
)


@pytest.mark.parametrize("address", ["10.1.2.3", "172.18.0.5", "192.168.1.1", "fd12:3456::1"])
def test_an_allow_listed_host_may_resolve_to_a_private_network(
    fake_dns: dict[str, list[str]], address: str
) -> None:
    fake_dns["receiver"] = [address]
    assert check_url("https://receiver:8443/hook", PRIVATE_HOST_ALLOWED).address == address


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "100.64.0.1", "::ffff:10.0.0.1"]
)
def test_an_allow_listed_host_still_may_not_reach_loopback_or_metadata(
    fake_dns: dict[str, list[str]], address: str
) -> None:
    fake_dns["receiver"] = ["172.18.0.5", address]
    with pytest.raises(UnsafeUrl, match=re.escape(str(ipaddress.ip_address(address)))):
        check_url("https://receiver:8443/hook", PRIVATE_HOST_ALLOWED)


def test_the_private_host_allowance_names_exact_hosts_and_keeps_the_other_rules(
    fake_dns: dict[str, list[str]],
) -> None:
    fake_dns["receiver.evil.example"] = ["172.18.0.5"]
    fake_dns["receiver"] = ["172.18.0.5"]
    with pytest.raises(UnsafeUrl, match="private address"):
        check_url("https://receiver.evil.example:8443/", PRIVATE_HOST_ALLOWED)
    with pytest.raises(UnsafeUrl, match="must start with https://"):
        check_url("http://receiver:8443/", PRIVATE_HOST_ALLOWED)
    with pytest.raises(UnsafeUrl, match="Port 6379 is not allowed"):
        check_url("https://receiver:6379/", PRIVATE_HOST_ALLOWED)


def test_the_private_hosts_come_from_a_json_list_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_PRIVATE_HOSTS", '["Receiver", "hooks.internal"]')
    policy = UrlPolicy.from_settings(Settings())
    assert policy.private_hosts == {"receiver", "hooks.internal"}


# --- rebinding: the connection goes to the address that was checked --------------------------


class FlippingResolver:
    """DNS that answers ``first`` once and ``then`` afterwards (a rebinding attack)."""

    def __init__(self, host: str, first: str, then: str) -> None:
        self.host, self.first, self.then = host, first, then
        self.calls = 0
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != self.host:
            return self.real(host, port, *args, **kwargs)
        self.calls += 1
        return [answer(self.first if self.calls == 1 else self.then, port)]


def test_rebinding_to_loopback_after_the_check_cannot_redirect_the_connection(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    resolver = FlippingResolver("rebind.example", first=PUBLIC_ADDRESS, then="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    connected_to: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *_args: Any, **_kwargs: Any) -> Any:
        connected_to.append(address)
        raise ConnectionRefusedError(111, "Connection refused")  # no internet in tests

    monkeypatch.setattr(socket, "create_connection", create_connection)
    policy = UrlPolicy(allowed_ports=frozenset({receiver.port}))

    outcome = post(
        f"http://rebind.example:{receiver.port}/hook",
        body=b"{}",
        headers={},
        policy=policy,
        options=OPTIONS,
    )

    assert connected_to == [(PUBLIC_ADDRESS, receiver.port)]
    assert resolver.calls == 1
    assert receiver.count() == 0
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.error is not None
    assert "ConnectionRefusedError" in outcome.error


def test_the_connection_reaches_the_checked_address_not_a_later_answer(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    resolver = FlippingResolver("rebind.example", first="127.0.0.1", then="127.0.0.2")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with running(Receiver(host="127.0.0.2", bind_port=receiver.port)) as impostor:
        outcome = post(
            f"http://rebind.example:{receiver.port}/hook?x=1",
            body=b"{}",
            headers={},
            policy=LOOPBACK_ALLOWED,
            options=OPTIONS,
        )
        assert impostor.count() == 0
    assert outcome.kind is OutcomeKind.SUCCESS
    assert resolver.calls == 1
    [request] = receiver.snapshot()
    assert request.headers["host"] == f"rebind.example:{receiver.port}"
    assert request.path == "/hook?x=1"


# --- TLS: pinned address, but SNI and certificate checks use the host name -------------------


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``secure.example`` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _sock, server_name, _ctx: server_names.append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.send_header("X-Seen-Host", self.headers.get("Host", ""))
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    yield int(server.server_address[1]), cert_path, server_names
    server.shutdown()
    server.server_close()


def test_https_is_pinned_to_the_address_but_verified_for_the_host_name(
    tls_receiver: tuple[int, Path, list[str | None]],
) -> None:
    port, cert_path, server_names = tls_receiver
    client_context = ssl.create_default_context(cafile=str(cert_path))
    target = Target("https", "secure.example", port, "127.0.0.1", "/hook")
    connection = PinnedHTTPSConnection(
        target, connect_timeout=2, read_timeout=2, context=client_context
    )
    try:
        connection.request("POST", "/hook", body=b"{}")
        response = connection.getresponse()
        assert response.status == 204
        assert response.getheader("X-Seen-Host") == f"secure.example:{port}"
    finally:
        connection.close()
    assert server_names == ["secure.example"]

    # The same pinned address under another name: the certificate does not match, refused.
    impostor = PinnedHTTPSConnection(
        Target("https", "other.example", port, "127.0.0.1", "/hook"),
        connect_timeout=2,
        read_timeout=2,
        context=client_context,
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        impostor.connect()
    impostor.close()
