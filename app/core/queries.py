"""Query building blocks that read the same on PostgreSQL (production) and SQLite (development)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import InternalTraversal

LIKE_ESCAPE = "\\"


def like_contains(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its ``%``, ``_`` and ``\\`` taken literally.

    Use with ``column.ilike(pattern, escape=LIKE_ESCAPE)``.
    """
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


class JSONArrayContains(ColumnElement[bool]):
    """True when the JSON array in ``array`` has the string ``item`` as an element.

    PostgreSQL: ``array @> jsonb_build_array(item)``, which a GIN index on the column can answer.
    SQLite (and any other backend): ``EXISTS`` over ``json_each``.
    """

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("array", InternalTraversal.dp_clauseelement),
        ("item", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, array: ColumnElement[Any], item: str | BindParameter[Any]) -> None:
        self.array = array
        # A named parameter is filled in at execution (a statement built once, run many times).
        self.item = item if isinstance(item, BindParameter) else bindparam(None, item, String())


def json_array_contains(array: Any, item: str | BindParameter[Any]) -> JSONArrayContains:
    """The condition "``item`` is an element of the JSON array column ``array``"."""
    return JSONArrayContains(array, item)


@compiles(JSONArrayContains, "postgresql")
def _contains_postgresql(element: JSONArrayContains, compiler: SQLCompiler, **kw: Any) -> str:
    array = compiler.process(element.array, **kw)
    item = compiler.process(element.item, **kw)
    return f"({array} @> jsonb_build_array(CAST({item} AS TEXT)))"


@compiles(JSONArrayContains)
def _contains_json_each(element: JSONArrayContains, compiler: SQLCompiler, **kw: Any) -> str:
    array = compiler.process(element.array, **kw)
    item = compiler.process(element.item, **kw)
    # Both parts are compiled SQL (a column and a bound parameter), never user text.
    return f"EXISTS (SELECT 1 FROM json_each({array}) WHERE json_each.value = {item})"  # noqa: S608
