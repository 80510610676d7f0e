"""Waking this process's webhook deliverers when a unit of work that queued events commits.

Other processes find new deliveries on their next look at the outbox (every few seconds).
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

_FLAG = "sendwell_wake_webhooks"
_wakes: set[threading.Event] = set()
_lock = threading.Lock()


def wake_after_commit(db: Session) -> None:
    db.info[_FLAG] = True


def register(wake: threading.Event) -> None:
    with _lock:
        _wakes.add(wake)


def unregister(wake: threading.Event) -> None:
    with _lock:
        _wakes.discard(wake)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        with _lock:
            for wake in _wakes:
                wake.set()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)
