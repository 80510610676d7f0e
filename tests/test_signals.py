"""Wake-ups across processes on SQLite: a unit of work that gives the sending engine something
to do, committed in one process, wakes the dispatchers listening in another (as NOTIFY does on
PostgreSQL); one that rolls back wakes nobody."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sendwell.kit.signals import dispatch_work, listen_for_notifications, wake_file

REQUEST_IN_ANOTHER_PROCESS = """
import sys
from sqlalchemy import text
from sendwell.db import make_engine, make_session_factory
from sendwell.kit.signals import dispatch_work

engine = make_engine(sys.argv[1])
with make_session_factory(engine)() as db:
    db.execute(text("SELECT 1"))
    dispatch_work.request(db)
    db.commit() if sys.argv[2] == "commit" else db.rollback()
engine.dispose()
"""


def request_in_another_process(url: str, end: str) -> None:
    subprocess.run(
        [sys.executable, "-c", REQUEST_IN_ANOTHER_PROCESS, url, end],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_commit_in_another_process_wakes_a_listening_dispatcher_on_sqlite(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sendwell.db'}"
    wake, stop = threading.Event(), threading.Event()
    listener = listen_for_notifications(url, dispatch_work, wake, stop)
    assert listener is not None
    try:
        request_in_another_process(url, "rollback")
        path = wake_file(url, "sendwell_dispatch")
        assert path is not None
        assert not path.exists()
        assert not wake.is_set()

        request_in_another_process(url, "commit")
        assert wake.wait(timeout=30), "the listener did not see the other process's commit"
    finally:
        stop.set()
        listener.join(timeout=5)


def test_an_in_memory_database_has_no_wake_file() -> None:
    assert wake_file("sqlite://", "sendwell_dispatch") is None
    assert wake_file("sqlite:///:memory:", "sendwell_dispatch") is None
    assert wake_file("postgresql+psycopg://u@localhost/sendwell", "sendwell_dispatch") is None
