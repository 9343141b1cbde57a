"""Query building blocks that read the same on PostgreSQL (production) and SQLite (development)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Select, String, bindparam, delete, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import InternalTraversal

LIKE_ESCAPE = "\\"
# Bounds one clean-up run: at most this many batches of one kind of row.
MAX_DELETE_BATCHES = 100


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


def delete_in_batches(
    session: Session, *, model: type[Any], chosen: Select[*tuple[Any, ...]], batch: int
) -> int:
    """Delete the rows of ``model`` whose key ``chosen`` selects, ``batch`` per committed
    statement, until fewer than ``batch`` go or ``MAX_DELETE_BATCHES`` ran; returns how many went.

    ``chosen`` selects the key columns of the rows to delete, without a limit (for example
    ``select(Model.id).where(...)``); small committed statements never run long or lock much.
    """
    columns = list(chosen.selected_columns)
    key = columns[0] if len(columns) == 1 else tuple_(*columns)
    statement = delete(model).where(key.in_(chosen.limit(batch)))
    total = 0
    for _ in range(MAX_DELETE_BATCHES):
        result = session.execute(statement, execution_options={"synchronize_session": False})
        session.commit()
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch:
            break
    return total
