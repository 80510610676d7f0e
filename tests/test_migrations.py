"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

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
