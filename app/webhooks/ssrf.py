"""The SSRF guard: which webhook URLs may be called, and connections pinned to the checked address.

A URL passes when its scheme and port are allowed, it carries no credentials, and EVERY address
its host resolves to is a global unicast address. Whatever the spelling of the host (a name, a
decimal, octal or hex IPv4 form, an IPv6 literal), the operating system's resolver turns it into
addresses and those are what is checked. The connection then goes to the address that was checked,
never to a second resolution, so DNS that changes in between (rebinding) cannot redirect it.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.config import Settings

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = ipaddress.ip_network("169.254.0.0/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# What an allow-listed private host may resolve to: private networks, never loopback,
# link-local (cloud metadata) or anything else the guard refuses.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why, for the webhook's owner."""


class UnresolvableHost(Exception):
    """The host name did not resolve (possibly a passing DNS failure)."""


@dataclass(frozen=True)
class UrlPolicy:
    """What the guard allows."""

    allowed_ports: frozenset[int]
    require_https: bool = False
    # Tests only: loopback/private addresses and any port (test receivers use random ports).
    allow_private: bool = False
    # Host names (lower-case ASCII) that may resolve to private-network addresses.
    private_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        """The policy configured by the ``WEBHOOK_*`` settings."""
        return cls(
            allowed_ports=frozenset(settings.WEBHOOK_ALLOWED_PORTS),
            require_https=settings.WEBHOOK_REQUIRE_HTTPS,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            private_hosts=frozenset(
                host.lower() for host in settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS
            ),
        )


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to say (host, path)."""

    scheme: str
    host: str  # as in the URL (IDNA-encoded): the Host header, TLS SNI and certificate name
    port: int
    address: str  # the checked IP address the connection must go to
    request_target: str  # path and query


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be called, or None when it is a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6"
        if address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback):
            return "an IPv4-compatible IPv6"
        if address.teredo is not None:
            return "a Teredo (IPv4-embedding)"
        if address.sixtofour is not None:
            embedded = refusal_reason(address.sixtofour)
            return None if embedded is None else f"a 6to4 address embedding {embedded}"
        if address in _NAT64:
            embedded = refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return None if embedded is None else f"a NAT64 address embedding {embedded}"
        if address in _LOCAL_NAT64:
            return "a local-use NAT64"
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "an unspecified"),
        (address.is_loopback, "a loopback"),
        (address in _METADATA, "a link-local (cloud metadata)"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (address in _CGNAT, "a shared (carrier-grade NAT)"),
        (address.is_reserved, "a reserved"),
        (address.is_private, "a private"),
        (not address.is_global, "a non-global"),
    ]
    for refused, reason in checks:
        if refused:
            return reason
    return None


def _split(url: str, policy: UrlPolicy) -> tuple[str, str, int, str]:
    """Scheme, ASCII host, port and request target of ``url``, or ``UnsafeUrl``."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise UnsafeUrl("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("The URL is malformed (check the host and port).") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https",) if policy.require_https else ("http", "https")
    if scheme not in allowed_schemes:
        raise UnsafeUrl(
            f"The URL must start with {' or '.join(f'{s}://' for s in allowed_schemes)}."
        )
    if "@" in parts.netloc:
        raise UnsafeUrl("The URL must not contain a user name or password.")
    host = parts.hostname or ""
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if "%" in host:
        raise UnsafeUrl("The URL must not name an IPv6 zone.")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl("The host name is not valid.") from None
    port = port if port is not None else DEFAULT_PORTS[scheme]
    if not policy.allow_private and port not in policy.allowed_ports:
        allowed = ", ".join(str(number) for number in sorted(policy.allowed_ports))
        raise UnsafeUrl(f"Port {port} is not allowed (allowed: {allowed}).")
    request_target = parts.path or "/"
    if parts.query:
        request_target += f"?{parts.query}"
    return scheme, ascii_host, port, request_target


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, through the operating system's resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise UnresolvableHost(f"The host {host!r} does not resolve.") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvableHost(f"The host {host!r} does not resolve.")
    return addresses


def check_url(url: str, policy: UrlPolicy) -> Target:
    """The target of ``url`` if it may be called; ``UnsafeUrl`` or ``UnresolvableHost`` if not."""
    scheme, host, port, request_target = _split(url, policy)
    addresses = resolve(host, port)
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:  # e.g. a scoped "fe80::1%eth0"
            raise UnsafeUrl(f"The host {host!r} resolves to an unusable address.") from None
        reason = refusal_reason(address)
        if host in policy.private_hosts and any(address in net for net in _PRIVATE_NETWORKS):
            continue  # the operator named this host as a receiver on the private network
        if reason is not None and not policy.allow_private:
            raise UnsafeUrl(
                f"The host {host!r} resolves to {address}, {reason} address; "
                "webhooks may only call public addresses."
            )
    return Target(scheme, host, port, addresses[0], request_target)


def _connect(address: str, port: int, connect_timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=connect_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked address, with the URL's host in the Host header."""

    def __init__(self, target: Target, *, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=connect_timeout)
        self.pinned_address = target.address
        self.read_timeout = read_timeout

    def connect(self) -> None:
        """Connect to the pinned address, never to a new resolution of the host."""
        self.sock = _connect(self.pinned_address, self.port, self.timeout)  # type: ignore[arg-type]
        self.sock.settimeout(self.read_timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address; SNI and certificate verification use the URL's host."""

    def __init__(
        self,
        target: Target,
        *,
        connect_timeout: float,
        read_timeout: float,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.tls_context = context or ssl.create_default_context()
        super().__init__(
            target.host, target.port, timeout=connect_timeout, context=self.tls_context
        )
        self.pinned_address = target.address
        self.read_timeout = read_timeout

    def connect(self) -> None:
        """Connect to the pinned address, then do TLS for the URL's host name."""
        sock = _connect(self.pinned_address, self.port, self.timeout)  # type: ignore[arg-type]
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        self.sock.settimeout(self.read_timeout)


def open_connection(
    target: Target,
    *,
    connect_timeout: float,
    read_timeout: float,
    tls_context: ssl.SSLContext | None = None,
) -> http.client.HTTPConnection:
    """An unconnected HTTP(S) connection pinned to ``target.address``."""
    if target.scheme == "https":
        return PinnedHTTPSConnection(
            target,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            context=tls_context,
        )
    return PinnedHTTPConnection(target, connect_timeout=connect_timeout, read_timeout=read_timeout)
