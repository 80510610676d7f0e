"""Engine and session scope: the edge (request, job, CLI command) commits or rolls back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sendwell.kit.notices import Outgoing, session_info

SQLITE_BUSY_TIMEOUT_MS = 5000
# How long one attempt to connect to PostgreSQL may take, unless the URL or libpq's
# PGCONNECT_TIMEOUT says otherwise: a server that drops packets would otherwise hold a
# starting process forever.
PG_CONNECT_TIMEOUT_S = 10
# What a PostgreSQL server says while it cannot take connections yet, though it will: waiting
# mends these. Any other refusal from the server (no such database or role, a wrong password,
# no pg_hba.conf entry) is a setting to fix, and waiting would only hide it.
PG_NOT_YET = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "not yet accepting connections",
    "too many clients",
    "remaining connection slots are reserved",
)

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine tuned for the dialect: WAL and a busy timeout on SQLite, pre-ping everywhere."""
    if url.startswith("sqlite"):
        _keep_private(make_url(url).database or "")
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    connect_args = (
        {}
        if "connect_timeout" in make_url(url).query or os.environ.get("PGCONNECT_TIMEOUT")
        else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    )
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args
    )


def _keep_private(path: str) -> None:
    """The SQLite file readable by its owner only (0600), like the secrets file.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        return
    except FileNotFoundError:  # no folder yet: SQLite will say so when connecting
        return
    os.close(fd)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine, outgoing: Outgoing | None = None) -> sessionmaker[Session]:
    """Sessions on the engine; `outgoing` is where their notices are emailed (none without)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True, info=session_info(outgoing))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def commit_then(db: Session, after: Callable[[], T]) -> T:
    """End the unit of work so far, then run `after`: work that must see it saved and runs
    in sessions of its own (wait until the sending engine's in-flight sends land, look a
    domain up outside any transaction). The session carries on as a new unit of work, which
    its scope commits or rolls back as usual.

    For service functions that own the order of their units of work; a route never
    commits (tests/test_layers.py)."""
    db.commit()
    return after()


@contextmanager
def all_or_nothing(db: Session) -> Iterator[None]:
    """The block's changes are kept only if it completes: on an error they are undone to a
    savepoint, what they touched is reloaded, and the error goes on. A page that shows its
    form again after a refused save reads what was there before, and the request's commit
    saves nothing of the refused try, while what the request did before the block stays."""
    write_lock_first(db)
    with db.begin_nested():
        yield


def write_lock_first(db: Session) -> None:
    """On SQLite, a SAVEPOINT that opens the transaction opens a deferred one: after it has
    read, its first write fails at once with "database is locked" (no busy wait) if another
    connection wrote in between, as the sending engine does all the time. So the transaction
    takes the write lock first, waiting for it up to the busy timeout. (The driver opens a
    transaction only before a write; a block after one is already inside it.)"""
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.dbapi_connection
    if driver is not None and not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")


def database_is_reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds (used by /healthz)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


class DatabaseUnreachable(Exception):
    """The database did not take a connection: `reason` is the driver's first line."""

    def __init__(self, reason: str, *, waited: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.waited = waited


def reach(
    engine: Engine,
    *,
    wait: float,
    on_wait: Callable[[str], None],
) -> None:
    """Connect once, to know the database answers before a long-running process starts.

    A PostgreSQL server that is not taking connections yet (refused: restarting or not started;
    starting up, shutting down, in recovery, full) is asked again, 0.5 s apart at first and at
    most 5 s apart, for up to `wait` seconds; `on_wait(reason)` is called once, before the first
    wait. A refusal that waiting cannot mend, and any SQLite error, raise `DatabaseUnreachable`
    at once, as does a server still away when the time is up.
    """
    started = time.monotonic()
    pause = 0.5
    told = False
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except DBAPIError as error:
            message = str(error.orig if error.orig is not None else error)
            reason = _reason(message)
            waited = time.monotonic() - started
            # Only a refused connection may mend; any other error is a setting the driver
            # refuses (an unknown sslmode, say).
            mends = isinstance(error, OperationalError) and _may_come(engine, message)
            if not mends or waited >= wait:
                raise DatabaseUnreachable(reason, waited=waited) from None
        if not told:
            on_wait(reason)
            told = True
        time.sleep(min(pause, wait - waited))
        pause = min(pause * 2, 5.0)


def _may_come(engine: Engine, message: str) -> bool:
    """Whether waiting may mend this refusal: PostgreSQL only, and no line of the message (one
    per address or host tried) a refusal from the server that is not about its state."""
    if engine.dialect.name != "postgresql":
        return False
    return not any(_refused_for_good(line) for line in message.splitlines())


def _refused_for_good(line: str) -> bool:
    return "FATAL:" in line and not any(phrase in line for phrase in PG_NOT_YET)


def _reason(message: str) -> str:
    """The line of psycopg's message that says why, without its hint lines: the server's own
    refusal where there is one, else the first line (`connection failed: connection to server
    at "127.0.0.1", port 5432 failed: Connection refused`)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    refusals = [line for line in lines if _refused_for_good(line)]
    return (refusals or lines or ["no answer"])[0]
