"""task counts kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

``task_counts`` holds how many tasks each user owns, split over a few slots per owner; triggers
on ``tasks`` keep it exact in the same transaction as every insert, delete, owner change and
truncate (PostgreSQL: statement-level triggers over transition tables, one upsert per statement
however many rows it touches; SQLite: row-level triggers). A user's total is the sum of their
slots. Each PostgreSQL connection writes the slot of its backend pid, so concurrent writes of one
owner rarely wait on the same row lock (one row serialized them: 32 concurrent creates of one
user ran at 90 per second). The existing tasks are counted once here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_UP = [
    """
    CREATE FUNCTION task_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_counts (owner_id, slot, total)
        SELECT owner_id, pg_backend_pid() % 16, count(*) FROM added_tasks
        GROUP BY owner_id ORDER BY owner_id
        ON CONFLICT (owner_id, slot) DO UPDATE SET total = task_counts.total + EXCLUDED.total;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION task_counts_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_counts (owner_id, slot, total)
        SELECT owner_id, pg_backend_pid() % 16, -count(*) FROM removed_tasks
        WHERE EXISTS (SELECT 1 FROM users WHERE users.id = removed_tasks.owner_id)
        GROUP BY owner_id ORDER BY owner_id
        ON CONFLICT (owner_id, slot) DO UPDATE SET total = task_counts.total + EXCLUDED.total;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION task_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_counts (owner_id, slot, total)
        VALUES (OLD.owner_id, pg_backend_pid() % 16, -1), (NEW.owner_id, pg_backend_pid() % 16, 1)
        ON CONFLICT (owner_id, slot) DO UPDATE SET total = task_counts.total + EXCLUDED.total;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION task_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM task_counts;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER task_counts_add AFTER INSERT ON tasks REFERENCING NEW TABLE AS added_tasks "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add()",
    "CREATE TRIGGER task_counts_subtract AFTER DELETE ON tasks "
    "REFERENCING OLD TABLE AS removed_tasks FOR EACH STATEMENT EXECUTE FUNCTION task_counts_subtract()",
    "CREATE TRIGGER task_counts_move AFTER UPDATE OF owner_id ON tasks FOR EACH ROW "
    "WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id) EXECUTE FUNCTION task_counts_move()",
    "CREATE TRIGGER task_counts_clear AFTER TRUNCATE ON tasks "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_counts_clear()",
]
POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS task_counts_clear ON tasks",
    "DROP TRIGGER IF EXISTS task_counts_move ON tasks",
    "DROP TRIGGER IF EXISTS task_counts_subtract ON tasks",
    "DROP TRIGGER IF EXISTS task_counts_add ON tasks",
    "DROP FUNCTION IF EXISTS task_counts_clear()",
    "DROP FUNCTION IF EXISTS task_counts_move()",
    "DROP FUNCTION IF EXISTS task_counts_subtract()",
    "DROP FUNCTION IF EXISTS task_counts_add()",
]
SQLITE_UP = [
    """
    CREATE TRIGGER task_counts_add AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts (owner_id, slot, total) VALUES (NEW.owner_id, 0, 1)
        ON CONFLICT (owner_id, slot) DO UPDATE SET total = total + 1;
    END
    """,
    """
    CREATE TRIGGER task_counts_subtract AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET total = total - 1 WHERE owner_id = OLD.owner_id AND slot = 0;
    END
    """,
    """
    CREATE TRIGGER task_counts_move AFTER UPDATE OF owner_id ON tasks
    WHEN OLD.owner_id IS NOT NEW.owner_id BEGIN
        UPDATE task_counts SET total = total - 1 WHERE owner_id = OLD.owner_id AND slot = 0;
        INSERT INTO task_counts (owner_id, slot, total) VALUES (NEW.owner_id, 0, 1)
        ON CONFLICT (owner_id, slot) DO UPDATE SET total = total + 1;
    END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS task_counts_move",
    "DROP TRIGGER IF EXISTS task_counts_subtract",
    "DROP TRIGGER IF EXISTS task_counts_add",
]


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("slot", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("total", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_task_counts_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "slot", name=op.f("pk_task_counts")),
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_UP if dialect == "postgresql" else SQLITE_UP:
        op.execute(statement)
    op.execute(
        "INSERT INTO task_counts (owner_id, slot, total) "
        "SELECT owner_id, 0, count(*) FROM tasks GROUP BY owner_id"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_DOWN if dialect == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("task_counts")
