"""The sending workers running now, each backed by a lock its process holds while it lives."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sendwell.kit.clock import utcnow
from sendwell.models.base import Base


class DispatchWorker(Base):
    """A worker that holds a liveness lock (dispatch/liveness.py): while its lock is held it
    is alive; once the lock is free, whatever it holds (a mailbox's sender lease, its claims)
    is anyone's at once instead of when the lease ends.

    `key` names the lock: PostgreSQL's advisory lock (LIVENESS_LOCKS, key), or on SQLite the
    file the worker holds a lock on. A worker that lost its lock registers again under a new
    key with the same name.
    """

    __tablename__ = "dispatch_workers"

    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
