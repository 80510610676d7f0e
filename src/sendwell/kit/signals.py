"""What happens once a unit of work commits, and never if it rolls back: waking background
work that the unit gave something to do, and actions such as an email about the change.

A service calls `signal.request(db)` inside its unit of work; when that unit commits, every
`threading.Event` registered on the signal in this process is set (nothing happens if it rolls
back). A signal with a channel wakes the other processes too (`listen_for_notifications`): on
PostgreSQL with a NOTIFY, which PostgreSQL delivers on commit to every process listening on it;
on SQLite by replacing a file named after the channel in the folder beside the database that
holds the workers' liveness locks (`<database>-workers/<channel>.wake`), which the other
processes look at twice a second. Processes listening on neither find the work on their next
periodic look.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import URL, event, make_url, text
from sqlalchemy.orm import Session

from sendwell.kit.logging import get_logger

log = get_logger(__name__)
_signals: list[AfterCommit] = []
_ACTIONS = "sendwell_after_commit"
# How often a process on SQLite looks whether another process replaced a channel's wake file.
WAKE_FILE_LOOK = 0.5


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
        self._file_flag = f"sendwell_signal_file_{name}"
        self._events: set[threading.Event] = set()
        self._lock = threading.Lock()
        _signals.append(self)

    def request(self, db: Session) -> None:
        """Wake this signal's listeners once the session's transaction commits."""
        db.info[self._flag] = True
        if not self.channel:
            return
        bind = db.get_bind()
        if bind.dialect.name == "postgresql":
            db.execute(text(f"NOTIFY {self.channel}"))
            return
        path = wake_file(bind.engine.url, self.channel)
        if path is not None:
            db.info[self._file_flag] = path

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
        path = session.info.pop(self._file_flag, None)
        if path is not None:
            try:
                _replace_wake_file(path)
            except OSError:
                # Other processes find the work on their next periodic look.
                log.warning("wake_file_failed", path=str(path), exc_info=True)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(self._flag, None)
        session.info.pop(self._file_flag, None)


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


def wake_file(url: str | URL, channel: str) -> Path | None:
    """The file whose replacement wakes other processes on this SQLite database (None for a
    database that is not a file on disk, or for another kind of database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(f"{path}-workers") / f"{channel}.wake"


def _replace_wake_file(path: Path) -> None:
    """A new file each time (a new inode), naming the process that wrote it."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def listen_for_notifications(
    url: str, signal: AfterCommit, wake: threading.Event, stop: threading.Event
) -> threading.Thread | None:
    """A thread that sets `wake` whenever another process requests the signal: on PostgreSQL
    on every NOTIFY on its channel, on SQLite when its wake file is replaced. None for a signal
    without a channel, or a database that is neither (an in-memory SQLite one)."""
    if not signal.channel:
        return None
    if url.startswith("postgresql"):
        target: Callable[..., None] = _listen
        args: tuple[object, ...] = (url, signal.channel, wake, stop)
    else:
        path = wake_file(url, signal.channel)
        if path is None:
            return None
        target, args = _watch, (path, wake, stop)
    thread = threading.Thread(target=target, args=args, daemon=True, name=f"{signal.name}-listen")
    thread.start()
    return thread


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def _written_by_another_process(path: Path) -> bool:
    try:
        return path.read_text().strip() != str(os.getpid())
    except (FileNotFoundError, UnicodeDecodeError):
        return True


def _watch(path: Path, wake: threading.Event, stop: threading.Event) -> None:
    """Set `wake` when another process replaces the wake file (this process's own requests
    woke its listeners at commit already)."""
    seen = _stamp(path)
    while not stop.wait(WAKE_FILE_LOOK):
        try:
            stamp = _stamp(path)
            if stamp != seen:
                seen = stamp
                if stamp is not None and _written_by_another_process(path):
                    wake.set()
        except OSError as error:
            log.info("wake_file_unreadable", path=str(path), reason=type(error).__name__)


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
