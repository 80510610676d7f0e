"""Units of work against the real databases while another connection writes, as the sending
engine does beside every request."""

from __future__ import annotations

import threading

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, func, make_url, select

from sendwell.db import all_or_nothing, make_engine, make_session_factory, session_scope
from sendwell.models import Workspace
from tests.conftest import Database


def test_a_block_that_reads_then_writes_is_saved_while_another_connection_writes(
    engine: Engine,
) -> None:
    """A save (say, confirming an import) reads first, then writes; meanwhile the engine
    writes too. On SQLite the save used to fail at once with "database is locked"; now one
    of the two waits for the other and both are kept."""
    factory = make_session_factory(engine)

    def write_meanwhile() -> None:
        with session_scope(factory) as other:
            other.add(Workspace(name="Written meanwhile"))

    engine_writes = threading.Thread(target=write_meanwhile)
    with session_scope(factory) as db, all_or_nothing(db):
        seen = db.scalar(select(func.count()).select_from(Workspace))
        engine_writes.start()
        engine_writes.join(timeout=0.5)  # done, or waiting for the block's lock
        db.add(Workspace(name="Saved by the block"))
    engine_writes.join(timeout=10)
    with session_scope(factory) as db:
        names = set(db.scalars(select(Workspace.name)))
    assert seen == 0
    assert names == {"Written meanwhile", "Saved by the block"}


@pytest.mark.parametrize(
    ("environment", "in_url", "applied"),
    [
        (None, "", "10"),  # the default: one attempt waits at most 10 s
        ("3", "", "3"),  # libpq's own PGCONNECT_TIMEOUT, when set
        (None, "connect_timeout=4", "4"),  # the URL's own
    ],
)
def test_a_postgresql_connection_attempt_has_a_time_limit_that_can_be_set(
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    environment: str | None,
    in_url: str,
    applied: str,
) -> None:
    if database.backend != "postgresql":
        pytest.skip("a connection time limit is PostgreSQL's (SQLite opens a file)")
    url = make_url(database.url)
    if in_url:
        url = url.update_query_string(in_url)
    if environment is None:
        monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("PGCONNECT_TIMEOUT", environment)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            dsn = connection.connection.dbapi_connection.info.dsn  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert conninfo_to_dict(dsn).get("connect_timeout") == applied
