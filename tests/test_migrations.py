"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text

from sendwell import migrate
from sendwell.models import Base
from tests.conftest import Database


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_database_is_at_the_latest_revision(database: Database) -> None:
    assert migrate.is_up_to_date(database.engine)
    assert migrate.current_revision(database.engine) == migrate.head_revision() == migrate.HEAD


def test_a_database_behind_the_latest_revision_or_never_migrated_is_not_up_to_date(
    database: Database,
) -> None:
    """`serve` and `worker` refuse to start on it (they check without Alembic)."""
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0020'"))
    try:
        assert not migrate.is_up_to_date(database.engine)
    finally:
        with database.engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": migrate.HEAD}
            )
    never = create_engine("sqlite://")
    assert not migrate.is_up_to_date(never)
    never.dispose()


DUE_TRIGGERS = {
    "mailboxes_due_mark",
    "enrollments_due_added",
    "enrollments_due_sooner",
    "campaigns_changed",
}


def triggers(connection: Connection) -> set[str]:
    if connection.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    return set(connection.scalars(text(query)))


def test_the_triggers_that_bring_a_quiet_mailbox_back_are_there(database: Database) -> None:
    """Migration 0023's triggers (dispatch/engine.py, `_leave_out`): a migration that rebuilds
    their tables on SQLite must create them again."""
    with database.engine.connect() as connection:
        assert triggers(connection) >= DUE_TRIGGERS


def test_migration_0023_goes_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command

    engine = create_engine(f"sqlite:///{tmp_path / 'down.db'}")
    migrate.upgrade(engine)
    config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    command.downgrade(config, "0022")
    with engine.connect() as connection:
        assert not DUE_TRIGGERS & triggers(connection)
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert triggers(connection) >= DUE_TRIGGERS
    engine.dispose()
