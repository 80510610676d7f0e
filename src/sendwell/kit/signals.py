"""What happens once a unit of work commits, and never if it rolls back: waking background
work that the unit gave something to do, and actions such as an email about the change.

A service calls `signal.request(db)` inside its unit of work; when that unit commits, every
`threading.Event` registered on the signal in this process is set (nothing happens if it rolls
back). A signal with a PostgreSQL channel also sends a NOTIFY, which PostgreSQL delivers on
commit to every process listening on it (`listen_for_notifications`), so workers in other
processes wake too; other processes without one find the work on their next periodic look.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import event, make_url, text
from sqlalchemy.orm import Session

from sendwell.kit.logging import get_logger

log = get_logger(__name__)
_signals: list[AfterCommit] = []
_ACTIONS = "sendwell_after_commit"


def call_after_commit(db: Session, action: Callable[[], None]) -> None:
    """Run `action` once this session's transaction commits (a slow mail server delays
    nothing inside the transaction, and nobody hears of a change that was rolled back)."""
    db.info.setdefault(_ACTIONS, []).append(action)


class AfterCommit:
    """Named work to wake after a commit: the dispatcher, the webhook deliverers."""

    def __init__(self, name: str, *, channel: str | None = None) -> None:
        self.name = name
        self.channel = channel
        self._flag = f"sendwell_signal_{name}"
        self._events: set[threading.Event] = set()
        self._lock = threading.Lock()
        _signals.append(self)

    def request(self, db: Session) -> None:
        """Wake this signal's listeners once the session's transaction commits."""
        db.info[self._flag] = True
        if self.channel and db.get_bind().dialect.name == "postgresql":
            db.execute(text(f"NOTIFY {self.channel}"))

    def register(self, wake: threading.Event) -> None:
        with self._lock:
            self._events.add(wake)

    def unregister(self, wake: threading.Event) -> None:
        with self._lock:
            self._events.discard(wake)

    def _committed(self, session: Session) -> None:
        if session.info.pop(self._flag, False):
            with self._lock:
                for wake in self._events:
                    wake.set()

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(self._flag, None)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for signal in _signals:
        signal._committed(session)
    for action in session.info.pop(_ACTIONS, []):
        try:
            action()
        except Exception:
            # The change is committed whatever a notice does; one failure stops no other.
            log.exception("after_commit_failed")


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    for signal in _signals:
        signal._rolled_back(session)
    session.info.pop(_ACTIONS, None)


def listen_for_notifications(
    url: str, signal: AfterCommit, wake: threading.Event, stop: threading.Event
) -> threading.Thread | None:
    """On PostgreSQL, a thread that sets `wake` on every NOTIFY on the signal's channel from
    any process; None on other databases or for a signal without a channel."""
    if not url.startswith("postgresql") or not signal.channel:
        return None
    thread = threading.Thread(
        target=_listen,
        args=(url, signal.channel, wake, stop),
        daemon=True,
        name=f"{signal.name}-listen",
    )
    thread.start()
    return thread


def _listen(url: str, channel: str, wake: threading.Event, stop: threading.Event) -> None:
    import psycopg

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f"LISTEN {channel}")
                while not stop.is_set():
                    for _notice in connection.notifies(timeout=1.0):
                        wake.set()
        except psycopg.Error as error:
            log.info("listen_reconnecting", channel=channel, reason=type(error).__name__)
            stop.wait(2.0)


# New steps to send (a campaign started or resumed, recipients added, an account reconnected):
# wakes the dispatchers of every process.
dispatch_work = AfterCommit("dispatch", channel="sendwell_dispatch")
# New webhook deliveries in the outbox: wakes this process's deliverers.
webhook_work = AfterCommit("webhooks")
