"""Marshmallow building blocks shared by every feature's schemas."""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import marshmallow as ma
from marshmallow import validate

from app.config import current_settings

# The same rule as a JSON Schema pattern, so the document says what the server refuses.
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f]*$"
MULTILINE_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
# The server's checks of those rules (Python's re reads the same \u escapes), and of surrogates:
# one C-level scan each instead of a Python loop over every character of a 10,000-character
# description.
_SINGLE_LINE = re.compile(SINGLE_LINE_PATTERN)
_MULTILINE = re.compile(MULTILINE_PATTERN)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class Text(ma.fields.String):
    """A string that refuses NUL and other control characters PostgreSQL or logs choke on, and
    lone surrogates that no UTF-8 encoder accepts."""

    default_error_messages = {
        "control": "Must not contain control characters.",
        "surrogate": "Must be valid Unicode (a lone surrogate such as \\ud800 is not).",
    }

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata.setdefault("pattern", MULTILINE_PATTERN if multiline else SINGLE_LINE_PATTERN)
        super().__init__(*args, metadata=metadata, **kwargs)
        self._no_control = _MULTILINE if multiline else _SINGLE_LINE

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result: str = super()._deserialize(value, attr, data, **kwargs)
        if self._no_control.fullmatch(result) is None:  # fullmatch: "$" alone passes a last "\n"
            raise self.make_error("control")
        # JSON's "\ud800" escape decodes to a string that UTF-8 (PostgreSQL, JWT, logs) cannot
        # encode. Not in the pattern: a JavaScript pattern sees every emoji as two surrogates.
        if _SURROGATE.search(result) is not None:
            raise self.make_error("surrogate")
        return result


class StrictSchema(ma.Schema):
    """Unknown fields are an error, never silently dropped (no mass assignment).

    ``OPENAPI_RULES`` are JSON Schema keywords added to the schema's document, stating what its
    ``validates_schema`` methods check (``app.core.api.DocumentedRulesPlugin``).
    """

    OPENAPI_RULES: ClassVar[dict[str, Any]] = {}

    class Meta:
        unknown = ma.RAISE


class PageSize(ma.fields.Integer):
    """``page_size``: capped by ``MAX_PAGE_SIZE``, which the document shows as its maximum
    (``app.core.api`` fills it in from the app's settings)."""


class PatchSchema(StrictSchema):
    """The body of a PATCH: some of the fields, at least one."""

    OPENAPI_RULES: ClassVar[dict[str, Any]] = {"minProperties": 1}

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Give at least one field to change.", "_schema")


def _default_page_size() -> int:
    return current_settings().DEFAULT_PAGE_SIZE


class PageArgs(StrictSchema):
    """``page`` and ``page_size`` query arguments; the size is capped by ``MAX_PAGE_SIZE``."""

    page = ma.fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "1-based page number", "example": 1},
    )
    page_size = PageSize(
        load_default=_default_page_size,
        validate=validate.Range(min=1),
        metadata={
            "description": "Items per page (default 20, at most 100 unless configured)",
            "example": 20,
        },
    )

    @ma.validates("page_size")
    def _page_size_capped(self, value: int, **_kwargs: Any) -> None:
        limit = current_settings().MAX_PAGE_SIZE
        if value > limit:
            raise ma.ValidationError(f"Must be at most {limit}.")


class PageMeta(ma.Schema):
    """Pagination metadata of a list response."""

    page = ma.fields.Integer(required=True, metadata={"example": 1})
    page_size = ma.fields.Integer(required=True, metadata={"example": 20})
    total = ma.fields.Integer(required=True, metadata={"example": 42})
    pages = ma.fields.Integer(required=True, metadata={"example": 3})


def page_meta(*, page: int, page_size: int, total: int) -> dict[str, int]:
    """The ``meta`` object of a list response."""
    return {
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": math.ceil(total / page_size) if total else 0,
    }


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A ``{items: [item], meta: PageMeta}`` envelope schema named ``name``."""
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item), required=True),
            "meta": ma.fields.Nested(PageMeta, required=True),
        },
        name=name,
    )
