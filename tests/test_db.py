"""Units of work against the real databases while another connection writes, as the sending
engine does beside every request."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select

from sendwell.db import all_or_nothing, make_session_factory, session_scope
from sendwell.models import Workspace


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
