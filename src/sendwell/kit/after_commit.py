"""Work that must wait until a unit of work has committed (an email about the change).

A rolled-back unit of work drops what it queued, so nobody hears of a change that did not
happen; a slow mail server delays nothing inside the transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from sendwell.kit.logging import get_logger

log = get_logger(__name__)
_QUEUE = "sendwell_after_commit"


def call_after_commit(db: Session, action: Callable[[], None]) -> None:
    """Run `action` once this session's transaction commits."""
    db.info.setdefault(_QUEUE, []).append(action)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for action in session.info.pop(_QUEUE, []):
        try:
            action()
        except Exception:
            # The change is committed whatever a notice does; one failure stops no other.
            log.exception("after_commit_failed")


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUE, None)
