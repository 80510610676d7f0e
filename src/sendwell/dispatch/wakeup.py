"""Waking the dispatcher the moment there is new work, in this process and in others.

Services call `request_wakeup(db)` inside their unit of work. When that unit commits, every
dispatcher in this process wakes; on PostgreSQL a NOTIFY (delivered on commit) wakes the
dispatchers of other processes, which LISTEN on the same channel.
"""

from __future__ import annotations

import threading

from sqlalchemy import event, text
from sqlalchemy.orm import Session

CHANNEL = "sendwell_dispatch"
_FLAG = "sendwell_wake_dispatcher"
_events: set[threading.Event] = set()
_lock = threading.Lock()


def request_wakeup(db: Session) -> None:
    """Wake dispatchers once this session's transaction commits."""
    db.info[_FLAG] = True
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text(f"NOTIFY {CHANNEL}"))


def register(wake: threading.Event) -> None:
    with _lock:
        _events.add(wake)


def unregister(wake: threading.Event) -> None:
    with _lock:
        _events.discard(wake)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        with _lock:
            for wake in _events:
                wake.set()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


def listen_for_notifications(
    url: str, wake: threading.Event, stop: threading.Event
) -> threading.Thread | None:
    """On PostgreSQL, a thread that sets `wake` on every NOTIFY from any process."""
    if not url.startswith("postgresql"):
        return None
    thread = threading.Thread(
        target=_listen, args=(url, wake, stop), daemon=True, name="dispatch-listen"
    )
    thread.start()
    return thread


def _listen(url: str, wake: threading.Event, stop: threading.Event) -> None:
    import psycopg
    from sqlalchemy import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for _notice in connection.notifies(timeout=1.0):
                        wake.set()
        except psycopg.Error:
            stop.wait(2.0)
