"""HTTP validators: entity tags for conditional reads (304) and writes (412).

A resource with a version number uses a strong ETag, ``"<version>"``; ``If-Match`` on a write is
parsed (``IfMatchHeader``, a flask-smorest header argument) into the set of versions the client
accepts and handed to the service, which makes the UPDATE itself conditional (see
``app.tasks.service``). Other GET responses get a weak ETag hashed
from their body, which is enough to answer ``If-None-Match`` with 304.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

import marshmallow as ma
from flask import Response, request
from werkzeug.http import parse_etags

F = TypeVar("F", bound=Callable[..., Any])

_VERSION_TAG = re.compile(r"[0-9]{1,18}")  # fits a signed 64-bit integer
CACHE_CONTROL = "private, no-cache"  # per-user data: caches may keep it, but must revalidate

ETAG_HEADER_DOC = {
    "description": "Entity tag of the representation; send it back in If-None-Match or If-Match",
    "schema": {"type": "string", "example": '"3"'},
}
IF_NONE_MATCH_PARAMETER = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "description": "An ETag from an earlier response: 304 Not Modified when it is still current",
    "schema": {"type": "string", "example": '"3"'},
}
NOT_MODIFIED_DOC = {
    "description": "Not Modified: the ETag in If-None-Match is current; no body.",
    "headers": {"ETag": ETAG_HEADER_DOC},
}


def version_etag(version: int) -> str:
    """The strong ETag header value of ``version``."""
    return f'"{version}"'


class IfMatchVersions(ma.fields.Field[frozenset[int] | None]):
    """The ``If-Match`` header as the versions it accepts; None when it imposes nothing (``*``).

    If-Match uses strong comparison, so weak and non-numeric tags can never match: they leave an
    empty set, which always fails with 412.
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> frozenset[int] | None:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        tags = parse_etags(value)
        if tags.star_tag:
            return None
        return frozenset(int(tag) for tag in tags.as_set() if _VERSION_TAG.fullmatch(tag))


class IfMatchHeader(ma.Schema):
    """The optional ``If-Match`` request header of a conditional write."""

    if_match = IfMatchVersions(
        data_key="If-Match",
        load_default=None,
        metadata={
            "type": "string",
            "description": (
                "The ETag you read: the write happens only if the resource still has that "
                "version, else 412. Without it the write is unconditional."
            ),
            "example": '"3"',
        },
    )


def conditional_json(response: Response) -> Response:
    """Give a successful GET ``response`` an ETag (weak, from its body, unless it has one) and
    turn it into a bodiless 304 when ``If-None-Match`` names that ETag."""
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    if "ETag" not in response.headers:
        digest = hashlib.sha256(response.get_data()).hexdigest()[:32]
        response.set_etag(digest, weak=True)
    response.headers.setdefault("Cache-Control", CACHE_CONTROL)
    response.vary.add("Authorization")
    etag, _weak = response.get_etag()
    # If-None-Match uses weak comparison: W/"x" and "x" match each other.
    if etag is not None and request.if_none_match.contains_weak(etag):
        response.status_code = 304
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
        response.headers.pop("Content-Length", None)
    return response


def conditional(view: F) -> F:
    """Decorate a view (above ``@blp.response``) so its response goes through
    ``conditional_json``; documents the ``If-None-Match`` request header."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = view(*args, **kwargs)
        if isinstance(response, Response):
            return conditional_json(response)
        return response

    # flask-smorest builds an operation's parameters from ``_apidoc["arguments"]`` (a later
    # ``@blp.doc(parameters=...)`` would replace the query parameters instead of adding to them).
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(
        dict(IF_NONE_MATCH_PARAMETER)
    )
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
