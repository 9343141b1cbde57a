"""Query helpers that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.queries import LIKE_ESCAPE, json_array_contains, like_contains
from app.tasks.models import Task

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("tags", sa.JSON),
)


@pytest.fixture
def sqlite_connection() -> Iterator[sa.Connection]:
    """An in-memory SQLite database with a few rows in ``things``."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            things.insert(),
            [
                {"id": 1, "name": "100% done", "tags": ["a", "b"]},
                {"id": 2, "name": "100 done", "tags": ["b"]},
                {"id": 3, "name": "snake_case", "tags": ["ab"]},
                {"id": 4, "name": "snakeXcase", "tags": []},
                {"id": 5, "name": r"C:\temp", "tags": ['quo"te']},
            ],
        )
        yield connection
    engine.dispose()


def matching(connection: sa.Connection, condition: sa.ColumnElement[bool]) -> list[int]:
    """Ids of the ``things`` rows matching ``condition``."""
    return list(connection.scalars(sa.select(things.c.id).where(condition).order_by(things.c.id)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100%", [1]), ("e_c", [3]), ("\\t", [5]), ("DONE", [1, 2]), ("%", [1]), ("_", [3])],
)
def test_like_contains_takes_wildcards_literally(
    sqlite_connection: sa.Connection, text: str, expected: list[int]
) -> None:
    condition = things.c.name.ilike(like_contains(text), escape=LIKE_ESCAPE)

    assert matching(sqlite_connection, condition) == expected


@pytest.mark.parametrize(
    ("tag", "expected"), [("a", [1]), ("b", [1, 2]), ("ab", [3]), ('quo"te', [5]), ("z", [])]
)
def test_json_array_contains_on_sqlite(
    sqlite_connection: sa.Connection, tag: str, expected: list[int]
) -> None:
    # Run twice with different values: the compiled statement is cached, the value is not.
    assert matching(sqlite_connection, json_array_contains(things.c.tags, tag)) == expected
    assert matching(sqlite_connection, json_array_contains(things.c.tags, "b")) == [1, 2]


def test_json_array_contains_compiles_per_dialect() -> None:
    condition = json_array_contains(Task.tags, "x")

    assert "@> jsonb_build_array" in str(condition.compile(dialect=postgresql.dialect()))
    assert "json_each(tasks.tags)" in str(condition.compile(dialect=sqlite.dialect()))


def test_json_array_contains_on_postgresql_can_use_the_gin_index(db_session: Session) -> None:
    db_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    query = sa.select(Task.id).where(json_array_contains(Task.tags, "work"))

    compiled = query.compile(db_session.get_bind())
    plan = (
        db_session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
    ).all()

    assert any("ix_tasks_tags" in line for line in plan), plan
