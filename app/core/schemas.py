"""Marshmallow building blocks shared by every feature's schemas."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.config import current_settings


class Text(ma.fields.String):
    """A string that refuses NUL and other control characters PostgreSQL or logs choke on."""

    default_error_messages = {"control": "Must not contain control characters."}

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = {"\n", "\r", "\t"} if multiline else set()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result: str = super()._deserialize(value, attr, data, **kwargs)
        if any(
            (ord(char) < 32 or ord(char) == 127) and char not in self._allowed for char in result
        ):
            raise self.make_error("control")
        return result


class StrictSchema(ma.Schema):
    """Unknown fields are an error, never silently dropped (no mass assignment)."""

    class Meta:
        unknown = ma.RAISE


def _default_page_size() -> int:
    return current_settings().DEFAULT_PAGE_SIZE


class PageArgs(StrictSchema):
    """``page`` and ``page_size`` query arguments; the size is capped by ``MAX_PAGE_SIZE``."""

    page = ma.fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "1-based page number", "example": 1},
    )
    page_size = ma.fields.Integer(
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
