"""Who is calling from where: the client address behind trusted proxies, and the docs allow-list.

``request.remote_addr`` is the TCP peer unless ``PROXY_FIX_X_FOR`` proxies are trusted; then it
is the address the outermost trusted proxy saw, taken from the right of ``X-Forwarded-For``. A
client may put anything at the left of that header, so no more hops than really exist may be
trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from flask import Flask, request
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# flask-smorest serves /docs and the OpenAPI document from this blueprint.
DOCS_BLUEPRINT = "api-docs"
SWAGGER_ASSETS = "swagger-ui/"


def init_client_address(app: Flask, settings: Settings) -> None:
    """Trust ``X-Forwarded-For``/``-Proto`` from the configured number of proxies only."""
    if settings.PROXY_FIX_X_FOR or settings.PROXY_FIX_X_PROTO:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.PROXY_FIX_X_FOR,
            x_proto=settings.PROXY_FIX_X_PROTO,
            x_host=0,
            x_port=0,
            x_prefix=0,
        )


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    """True when ``address`` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def is_docs_request() -> bool:
    """True for /docs, the OpenAPI document and the Swagger UI assets."""
    if request.blueprint == DOCS_BLUEPRINT:
        return True
    filename = (request.view_args or {}).get("filename", "")
    return request.endpoint == "static" and str(filename).startswith(SWAGGER_ASSETS)


def init_docs_access(app: Flask, settings: Settings) -> None:
    """Answer the docs to ``DOCS_ALLOWED_IPS`` only; others get the 404 of an unknown URL."""
    networks = settings.docs_allowed_networks
    if not networks:
        return

    @app.before_request
    def _hide_docs() -> None:
        if is_docs_request() and not address_in(request.remote_addr, networks):
            raise NotFound()
