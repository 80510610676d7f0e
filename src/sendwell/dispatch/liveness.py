"""Whether a sending worker is alive, known the moment its process dies.

A worker holds a mailbox's sender lease while it sends for it, and each step it claims
carries a lease too (`DispatchPolicy.lease`: twice the provider timeout plus 30 s, 70 s by
default). Waiting for a lease to end is the only way to tell a dead worker from a slow one,
so a killed worker used to hold its mailboxes for that long. A running worker therefore also
holds a liveness lock that the operating system or the database frees when its process dies,
and registers itself (`dispatch_workers`) under the lock's key. Each pass, a worker looks for
registered workers whose lock is free: they are gone, and what they held is anyone's at once.

- PostgreSQL: a session-level advisory lock on a connection of the worker's own, held for its
  whole life. "Once acquired at session level, an advisory lock is held until explicitly
  released or the session ends"
  (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS); the
  session ends when the connection does, also when the process is SIGKILLed (the kernel
  closes its socket). Others read which of these locks are granted in pg_locks.
- SQLite: flock(2) on a file beside the database (`<database>-workers/<worker>.lock`); the
  kernel drops the lock when the last descriptor of the open file is closed, which the death
  of the process does (https://man7.org/linux/man-pages/man2/flock.2.html). SQLite is used
  by one `sendwell serve` (or by processes on one machine), so a restart is the failover: the
  restarted server is a new worker that finds its predecessor's file unlocked and sends for
  its mailboxes at once. An in-memory database has no other process to fail over from.

What a gone worker held: its mailboxes' sender leases are cleared, and its claims that never
passed the gate go back in line (no host ever saw them). A send it had handed to a host keeps
its lease: the host may still be finishing it, and a worker cut off from the database may
still be waiting for the answer; when the lease ends it is looked for in Sent before it can
go again, as before. Only that recipient waits; the mailbox's others go on.

A worker that is alive but lost its lock (its connection cut, the database restarted) may be
judged gone meanwhile. It checks its lock before each gate and sends nothing more in the pass
once it is lost; its next pass takes a new lock under the same name. Either way the ledger's
compare-and-set statements (the gate, a claim's release) keep two workers off one claim.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from sendwell.db import session_scope
from sendwell.dispatch import repository as repo
from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.models import DispatchWorker

log = get_logger(__name__)


@dataclass(frozen=True)
class Gone:
    """Workers whose lock is free: the names nobody alive goes by any more, and every
    registration to forget."""

    names: set[str] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)


def gone_from(workers: list[tuple[DispatchWorker, bool]], me: str) -> Gone:
    """From each registration and whether its lock is held: who is gone. A name registered
    again under a lock that is held (a worker that lost its lock and took a new one) is not."""
    alive = {worker.name for worker, held in workers if held}
    free = [worker for worker, held in workers if not held]
    return Gone({w.name for w in free} - alive - {me}, {w.key for w in free})


class Liveness:
    """No lock to hold: other workers' leases end when they expire. What every kind shares:
    clearing what gone workers held."""

    def __init__(self, factory: sessionmaker[Session], name: str) -> None:
        self.factory = factory
        self.name = name
        self.key = 0
        self.started = False

    def start(self) -> None:
        """Take the lock and register; held until `close` or the process ends."""
        self.started = True

    def held(self) -> bool:
        """Whether this worker still holds its lock (True when it never took one), without
        a round trip when nothing suggests otherwise: asked before every gate."""
        return True

    def renew(self) -> None:
        """At the start of a pass: take a new lock if the old one was lost."""
        if not self.started or self.held():
            return
        log.warning("liveness_lock_lost", worker=self.name)
        self._drop()
        with suppress(SQLAlchemyError), session_scope(self.factory) as db:
            repo.forget_workers(db, {self.key})
        self.start()

    def gone(self) -> Gone:
        return Gone()

    def forget(self, gone: Gone) -> list[int]:
        """Clear the sender leases of gone workers and forget their registrations (their
        claims were put back in line first, by `Outcomes.release_expired_claims`); returns
        the mailboxes they were sending for."""
        if not gone.names and not gone.keys:
            return []
        with session_scope(self.factory) as db:
            freed = repo.release_senders(db, gone.names)
            repo.forget_workers(db, gone.keys)
        log.warning("workers_gone", worker=self.name, gone=sorted(gone.names), mailboxes=freed)
        return freed

    def close(self) -> None:
        """A graceful end: unregister and let the lock go."""
        if not self.started:
            return
        self.started = False
        with suppress(SQLAlchemyError), session_scope(self.factory) as db:
            repo.forget_workers(db, {self.key})
        self._drop()

    def _drop(self) -> None:
        """Let go of the lock, whatever state it is in."""


class AdvisoryLock(Liveness):
    """PostgreSQL: an advisory lock on a connection of the worker's own (outside the pool)."""

    def __init__(self, factory: sessionmaker[Session], name: str, engine: Engine) -> None:
        super().__init__(factory, name)
        self._url = engine.url
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        # The database connection the lock was taken on, and whether it is known lost.
        self._raw: Any = None
        self._lost = False

    def start(self) -> None:
        engine = create_engine(self._url, poolclass=NullPool)
        try:
            connection = engine.connect()
            # Registered and locked in one transaction: nobody sees the registration
            # before its lock is held.
            with Session(bind=connection) as db:
                key = repo.register_worker(
                    db, self.name, socket.gethostname(), os.getpid(), utcnow()
                )
                if not repo.take_liveness_lock(db, key):
                    raise RuntimeError(f"the liveness lock {key} is held by another session")
                db.commit()
        except BaseException:
            engine.dispose()
            raise
        self._engine, self._connection, self.key = engine, connection, key
        self._raw, self._lost = connection.connection.dbapi_connection, False
        self.started = True

    def held(self) -> bool:
        if not self.started:
            return True
        if not self._lost:
            self._lost = not self._still_held()
        return not self._lost

    def _still_held(self) -> bool:
        connection, raw = self._connection, self._raw
        if connection is None or connection.invalidated or raw is None or raw.closed:
            return False
        # The connection is idle: anything to read (most likely the server's goodbye, or
        # the end of the stream) is worth a round trip to learn whether it still stands.
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
        if not readable:
            return True
        try:
            with Session(bind=connection) as db:
                repo.ping(db)
                db.commit()
        except DBAPIError:
            return False
        # A lost connection is replaced on its next use, without the lock: only the one that
        # took the lock counts.
        return not connection.invalidated and connection.connection.dbapi_connection is raw

    def gone(self) -> Gone:
        with session_scope(self.factory) as db:
            return gone_from(repo.workers_with_lock(db), self.name)

    def _drop(self) -> None:
        if self._connection is not None:
            with suppress(SQLAlchemyError):
                self._connection.close()
        if self._engine is not None:
            self._engine.dispose()
        self._engine = self._connection = self._raw = None


class LockFile(Liveness):
    """SQLite: flock(2) on a file of the worker's own in a folder beside the database."""

    def __init__(self, factory: sessionmaker[Session], name: str, folder: Path) -> None:
        super().__init__(factory, name)
        self.folder = folder
        self._fd: int | None = None

    def _path(self, name: str) -> Path:
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.lock"

    def start(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self._path(self.name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Locked before it is registered: a registration's file is never seen unlocked
            # while its worker lives.
            with session_scope(self.factory) as db:
                key = repo.register_worker(
                    db, self.name, socket.gethostname(), os.getpid(), utcnow()
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.key = fd, key
        self.started = True

    def held(self) -> bool:
        if not self.started:
            return True
        # Still locked by this descriptor, and still the file others look at.
        return self._fd is not None and os.fstat(self._fd).st_nlink > 0

    def gone(self) -> Gone:
        with session_scope(self.factory) as db:
            registered = repo.registered_workers(db)
        return gone_from([(w, self._locked(w.name)) for w in registered], self.name)

    def _locked(self, name: str) -> bool:
        """Whether someone holds the worker's file locked. A file found unlocked is removed
        (only if it is still the one under that name: its worker may have made a new one)."""
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    path.unlink()
            return False
        finally:
            os.close(fd)

    def _drop(self) -> None:
        if self._fd is None:
            return
        with suppress(FileNotFoundError):
            path = self._path(self.name)
            if os.stat(path).st_ino == os.fstat(self._fd).st_ino:
                path.unlink()
        os.close(self._fd)
        self._fd = None


def liveness_for(factory: sessionmaker[Session], name: str) -> Liveness:
    """The liveness lock the database allows."""
    with factory() as db:
        engine = db.get_bind()
    if not isinstance(engine, Engine):
        return Liveness(factory, name)
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(factory, name, engine)
    path = engine.url.database or ""
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")
    if engine.dialect.name == "sqlite" and on_disk:
        return LockFile(factory, name, Path(f"{path}-workers"))
    return Liveness(factory, name)
